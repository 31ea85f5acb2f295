namespace Streams.Bookie;

/// <summary>Settings of a bookie (configuration section "Bookie").</summary>
public sealed record BookieOptions
{
    /// <summary>Where the journal lives.</summary>
    public string DataDirectory { get; init; } = "./streams-data/bookie";

    /// <summary>
    /// Journal files are 2^bits bytes (26: 64 MiB). Space comes back a whole file at a time, so smaller files reclaim
    /// sooner; larger ones mean fewer files.
    /// </summary>
    public int JournalSegmentSizeBits { get; init; } = 26;

    /// <summary>How often garbage collection looks for space to reclaim.</summary>
    public TimeSpan GcInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest entry payload accepted (an 8 MiB event plus frame overhead fits).</summary>
    public int MaxEntrySize { get; init; } = 10 * 1024 * 1024;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException("Bookie:DataDirectory is empty.");
        }

        if (JournalSegmentSizeBits is < 20 or > 32)
        {
            throw new ArgumentException($"Bookie:JournalSegmentSizeBits must be between 20 (1 MiB) and 32 (4 GiB) (is {JournalSegmentSizeBits}).");
        }

        if (MaxEntrySize + Storage.JournalRecord.HeaderSize > Storage.Journal.MaxRecordSizeFor(JournalSegmentSizeBits))
        {
            throw new ArgumentException(
                $"Bookie:MaxEntrySize ({MaxEntrySize}) does not fit the journal's pages with JournalSegmentSizeBits {JournalSegmentSizeBits}; use 24 or more.");
        }

        if (GcInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("Bookie:GcInterval must be positive.");
        }
    }
}
