using System.Buffers;
using FASTER.core;

namespace Streams.Bookie.Storage;

/// <summary>
/// The bookie's journal: a FASTER log (FasterLog) in one directory, shared by every ledger the bookie stores.
/// <para>
/// Durability: FASTER's device opens its files with O_SYNC and, in FastCommitMode, commit records go into the log
/// itself: a completed commit is on disk. Records are only enqueued (copied into FASTER's page buffer) by callers;
/// the owner runs one commit at a time, and each commit covers everything enqueued before it started, so under
/// load one fsync serves many entries (group commit).
/// </para>
/// <para>
/// Ownership: an exclusive lock file makes the directory single-owner, so two bookie processes can never write the
/// same journal.
/// </para>
/// </summary>
internal sealed class Journal : IAsyncDisposable
{
    /// <summary>
    /// Pages of up to 16 MiB: a record must fit in one page, and the largest record is one 8 MiB event plus framing.
    /// A journal file holds whole pages, so smaller files mean smaller pages (and a smaller largest record).
    /// Two pages of memory is FASTER's minimum for a page to flush while the next fills.
    /// </summary>
    private const int MaxPageSizeBits = 24;

    private readonly string _directory;
    private readonly int _segmentSizeBits;
    private readonly int _pageSizeBits;
    private readonly object _enqueueLock = new();
    private FileStream? _ownerLock;
    private IDevice? _device;
    private FasterLog? _log;

    /// <param name="directory">Where the journal lives.</param>
    /// <param name="segmentSizeBits">Journal files are 2^bits bytes; space is reclaimed a whole file at a time.</param>
    public Journal(string directory, int segmentSizeBits = 26)
    {
        _directory = directory;
        _segmentSizeBits = segmentSizeBits;
        _pageSizeBits = Math.Min(MaxPageSizeBits, segmentSizeBits);
    }

    /// <summary>Largest record a journal with files of 2^<paramref name="segmentSizeBits"/> bytes takes.</summary>
    public static int MaxRecordSizeFor(int segmentSizeBits) => (1 << Math.Min(MaxPageSizeBits, segmentSizeBits)) - 64;

    public long SegmentSize => 1L << _segmentSizeBits;

    public long BeginAddress => Log.BeginAddress;

    public long TailAddress => Log.TailAddress;

    public long CommittedUntilAddress => Log.CommittedUntilAddress;

    private FasterLog Log => _log ?? throw new InvalidOperationException("The journal is not open.");

    public async Task OpenAsync(CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(_directory);
        try
        {
            _ownerLock = new FileStream(Path.Combine(_directory, "owner.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"The journal in {_directory} is in use by another process.", e);
        }

        _device = Devices.CreateLogDevice(Path.Combine(_directory, "journal"), preallocateFile: false);
        _log = await FasterLog.CreateAsync(
            new FasterLogSettings
            {
                LogDevice = _device,
                LogCommitDir = Path.Combine(_directory, "commits"),
                PageSizeBits = _pageSizeBits,
                MemorySizeBits = _pageSizeBits + 1,
                SegmentSizeBits = _segmentSizeBits,
                FastCommitMode = true,
                TryRecoverLatest = true,
                RemoveOutdatedCommits = true,
            },
            cancellationToken);
    }

    /// <summary>Copies a record into the journal; returns its address. Durable only after a commit covers it.</summary>
    public long Enqueue(ReadOnlySpan<byte> record)
    {
        lock (_enqueueLock)
        {
            return Log.Enqueue(record);
        }
    }

    /// <summary>Makes everything enqueued so far durable; returns the address up to which the journal is committed.</summary>
    public async ValueTask<long> CommitAsync(CancellationToken cancellationToken = default)
    {
        await Log.CommitAsync(cancellationToken);
        return Log.CommittedUntilAddress;
    }

    /// <summary>Reads the record at an address (committed records only).</summary>
    public async ValueTask<(IMemoryOwner<byte> Owner, int Length)> ReadAsync(long address, CancellationToken cancellationToken = default)
    {
        var (owner, length) = await Log.ReadAsync(address, MemoryPool<byte>.Shared, 0, cancellationToken);
        return owner is null ? throw new InvalidDataException($"No record at journal address {address}.") : (owner, length);
    }

    /// <summary>Every committed record from the beginning, in order, with its address.</summary>
    public IEnumerable<(long Address, IMemoryOwner<byte> Owner, int Length)> Scan()
    {
        using var iterator = Log.Scan(Log.BeginAddress, Log.CommittedUntilAddress);
        while (iterator.GetNext(MemoryPool<byte>.Shared, out var owner, out var length, out var address))
        {
            yield return (address, owner, length);
        }
    }

    /// <summary>Drops every record before <paramref name="address"/>; whole journal files before it are deleted.</summary>
    public void TruncateUntil(long address) => Log.TruncateUntil(address);

    public async ValueTask DisposeAsync()
    {
        if (_log is not null)
        {
            try
            {
                await _log.CommitAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException or FasterException or InvalidOperationException)
            {
                // Whatever was acknowledged is already committed.
            }

            _log.Dispose();
        }

        _device?.Dispose();
        if (_ownerLock is not null)
        {
            await _ownerLock.DisposeAsync();
        }
    }
}
