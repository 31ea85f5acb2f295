using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Bookie.Storage;
using Streams.Common.Configuration;
using Streams.Common.Hashing;
using Streams.Contracts.Bookie;
using Streams.Testing;

namespace Streams.Bookie.Tests.Storage;

/// <summary>A temporary bookie data directory, opened as a store with small journal files and no background GC.</summary>
internal sealed class BookieStoreDirectory(string prefix) : IDisposable
{
    private readonly TempDirectory _dir = new(prefix);

    public string Path => _dir.Path;

    public string JournalDirectory => System.IO.Path.Combine(_dir.Path, "journal");

    public Task<BookieStore> OpenAsync(int segmentBits = 20) =>
        BookieStore.OpenAsync(Options(segmentBits), NullLogger.Instance);

    public Task<BookieStore> OpenAsync(IJournalDisk disk, int segmentBits = 20) =>
        BookieStore.OpenAsync(Options(segmentBits), NullLogger.Instance, disk);

    /// <summary>Opens with the test settings changed by <paramref name="configure"/>.</summary>
    public Task<BookieStore> OpenAsync(IJournalDisk disk, Func<BookieOptions, BookieOptions> configure, int segmentBits = 20) =>
        BookieStore.OpenAsync(configure(Options(segmentBits)), NullLogger.Instance, disk);

    /// <summary>Adds <paramref name="payload"/> with its correct CRC.</summary>
    public static Task<BookieStatus> AddAsync(BookieStore store, long ledger, long entry, byte[] payload, long lac = -1, bool recovery = false) =>
        store.AddAsync(ledger, entry, lac, Crc32C.Compute(payload), recovery, new ReadOnlySequence<byte>(payload));

    public void Dispose() => _dir.Dispose();

    private BookieOptions Options(int segmentBits) => new()
    {
        DataDirectory = _dir.Path,
        JournalSegmentSize = new ByteSize(1L << segmentBits),
        MaxEntrySize = ByteSize.KiB(512),
        GcInterval = TimeSpan.FromHours(1),
    };
}
