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
/// Directory entries: O_SYNC does not make a new file's name durable. The journal's segment files and FASTER's
/// commit metadata files are created and removed through <see cref="DirectorySyncingDevice"/> and
/// <see cref="DirectorySyncingDeviceFactory"/>, which fsync the directory before a write into a new file completes
/// and after a removal; the directories themselves are created durably on open.
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

    /// <summary>
    /// FASTER writes its commit metadata (a new small file, and a directory fsync) every this many commits, and
    /// whenever the begin address moves. In FastCommitMode every commit also leaves a commit record in the log, and
    /// recovery scans forward from the newest metadata to the last intact commit record, so skipped metadata commits
    /// cost a slightly longer scan on open, never data; writing metadata on every commit would add a file creation,
    /// a synchronous write and two directory fsyncs to each group commit.
    /// </summary>
    private const int CommitMetadataInterval = 64;

    private readonly string _directory;
    private readonly int _segmentSizeBits;
    private readonly int _pageSizeBits;
    private readonly IJournalDisk _disk;
    private readonly JournalFault _fault = new();
    private FileStream? _ownerLock;
    private IDevice? _device;
    private FasterLog? _log;

    /// <param name="directory">Where the journal lives.</param>
    /// <param name="segmentSizeBits">Journal files are 2^bits bytes; space is reclaimed a whole file at a time.</param>
    /// <param name="disk">The file system under the journal (the local one unless a test simulates another).</param>
    public Journal(string directory, int segmentSizeBits = 26, IJournalDisk? disk = null)
    {
        _directory = Path.GetFullPath(directory);
        _disk = disk ?? LocalJournalDisk.Instance;
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
        var commitDirectory = Path.Combine(_directory, "commits");
        CreateDirectoryDurably(Path.Combine(commitDirectory, "log-commits")); // where FASTER's naming scheme puts commit files
        try
        {
            _ownerLock = new FileStream(Path.Combine(_directory, "owner.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"The journal in {_directory} is in use by another process.", e);
        }

        // Files a previous run created (the lock file, or a segment whose first write never completed) are named durably
        // before anything new is acknowledged.
        _disk.SyncDirectory(_directory);
        _device = new FaultRecordingDevice(new DirectorySyncingDevice(_disk.OpenLog(Path.Combine(_directory, "journal")), _disk), _fault);
        _log = await FasterLog.CreateAsync(
            new FasterLogSettings
            {
                LogDevice = _device,
                LogCommitManager = new DeviceLogCommitCheckpointManager(
                    new DirectorySyncingDeviceFactory(_disk.CommitFiles(), _disk, _fault),
                    new DefaultCheckpointNamingScheme(commitDirectory),
                    removeOutdated: true,
                    fastCommitThrottleFreq: CommitMetadataInterval),
                PageSizeBits = _pageSizeBits,
                MemorySizeBits = _pageSizeBits + 1,
                SegmentSizeBits = _segmentSizeBits,
                FastCommitMode = true,
                TryRecoverLatest = true,
            },
            cancellationToken);
    }

    /// <summary>
    /// Copies a record into the journal if its memory has room, and gives its address; false while the memory is full
    /// (a page frees once its flush completes, which a commit awaits). Never waits: callers that hold a lock queue the
    /// record and retry after the next commit. Durable only after a commit covers it. Throws
    /// <see cref="JournalFailedException"/> once the journal failed.
    /// </summary>
    public bool TryEnqueue(ReadOnlySpan<byte> record, out long address)
    {
        // Not FasterLog.Enqueue: it spins with Thread.Yield until a flush frees memory, which on a failed disk never
        // happens, and its callers would hold a lock and a pool thread meanwhile.
        _fault.ThrowIfSet(_directory);
        return Log.TryEnqueue(record, out address);
    }

    /// <summary>
    /// Makes everything enqueued so far durable; returns the address up to which the journal is committed. Throws
    /// <see cref="JournalFailedException"/> if any write of the journal failed, even one FASTER passed over.
    /// </summary>
    public async ValueTask<long> CommitAsync(CancellationToken cancellationToken = default)
    {
        _fault.ThrowIfSet(_directory);
        try
        {
            await Log.CommitAsync(cancellationToken);
        }
        catch (FasterException e)
        {
            _fault.Set(e);
        }

        _fault.ThrowIfSet(_directory);
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
                if (_fault.Error is null)
                {
                    await _log.CommitAsync();
                }
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

    /// <summary>Creates missing directories, fsyncing each new one's parent so the new entries survive a power cut.</summary>
    private void CreateDirectoryDurably(string directory)
    {
        if (Directory.Exists(directory))
        {
            return;
        }

        var parent = Path.GetDirectoryName(directory)!;
        CreateDirectoryDurably(parent);
        Directory.CreateDirectory(directory);
        _disk.SyncDirectory(parent);
    }
}
