using System.Diagnostics.Metrics;

namespace Streams.Bookie;

/// <summary>The bookie's instruments (meter "Streams.Bookie"), exported on /metrics and through OTLP.</summary>
internal static class BookieMetrics
{
    public const string MeterName = "Streams.Bookie";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> AddedEntries = Meter.CreateCounter<long>("streams.bookie.added_entries", "{entry}", "Entries made durable in the journal.");

    public static readonly Counter<long> AddedBytes = Meter.CreateCounter<long>("streams.bookie.added_bytes", "By", "Entry payload bytes made durable in the journal.");

    public static readonly Counter<long> Commits = Meter.CreateCounter<long>("streams.bookie.journal_commits", "{commit}", "Journal group commits (each one write-through to disk).");

    public static readonly Histogram<double> CommitLatency = Meter.CreateHistogram<double>("streams.bookie.journal_commit_latency", "ms", "Time of one group commit: the journal's disk write and flush.");

    public static readonly Counter<long> ReadEntries = Meter.CreateCounter<long>("streams.bookie.read_entries", "{entry}", "Entries served to readers.");

    public static readonly Counter<long> CorruptEntries = Meter.CreateCounter<long>("streams.bookie.corrupt_entries", "{entry}", "Entries that failed their checksum on read and were refused.");

    /// <summary>Registers gauges that observe a running bookie.</summary>
    public static void Observe(Func<long> journalBytes, Func<int> ledgers)
    {
        Meter.CreateObservableGauge("streams.bookie.journal_bytes", journalBytes, "By", "Bytes in the journal (live and not yet reclaimed).");
        Meter.CreateObservableGauge("streams.bookie.ledgers", ledgers, "{ledger}", "Ledgers with entries on this bookie.");
    }
}
