using System.Buffers;
using System.Runtime.CompilerServices;
using FASTER.core;

namespace Streams.SegmentStore.Logs;

/// <summary>
/// A durable log in a local FASTER log (FasterLog) in its own directory.
/// <para>
/// Durability: FASTER's device opens its files with O_SYNC and FastCommitMode writes commit records into the
/// log itself, so a completed commit is on disk. Appends are group-committed: one commit loop covers every
/// record enqueued while the previous commit was in flight, so one fsync serves many appends under load.
/// </para>
/// <para>
/// Fencing: an exclusive lock file makes the directory single-owner: a second process (or a second open in this
/// one) cannot open the log while the first holds it, so an old owner cannot append after a new one took over.
/// </para>
/// </summary>
internal sealed class FasterDurableDataLog : IDurableDataLog
{
    /// <summary>
    /// 16 MiB pages: a record must fit in one page, and the largest record is one 8 MiB event plus framing.
    /// Two pages of memory is FASTER's minimum for a page to flush while the next fills.
    /// </summary>
    private const int PageSizeBits = 24;
    private const int MemorySizeBits = 25;

    /// <summary>Journal files of 1 GiB; truncation deletes whole files.</summary>
    private const int SegmentSizeBits = 30;

    private readonly string _directory;
    private readonly object _enqueueLock = new();
    private readonly SemaphoreSlim _commitSignal = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private FileStream? _ownerLock;
    private IDevice? _device;
    private FasterLog? _log;
    private Task? _commitLoop;

    public FasterDurableDataLog(string directory)
    {
        _directory = directory;
    }

    public int MaxRecordSize => (1 << PageSizeBits) - 64;

    public async ValueTask OpenAsync(CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(_directory);
        try
        {
            _ownerLock = new FileStream(Path.Combine(_directory, "owner.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"The log in {_directory} is owned by another process or container instance.", e);
        }

        _device = Devices.CreateLogDevice(Path.Combine(_directory, "journal"), preallocateFile: false);
        _log = await FasterLog.CreateAsync(
            new FasterLogSettings
            {
                LogDevice = _device,
                LogCommitDir = Path.Combine(_directory, "commits"),
                PageSizeBits = PageSizeBits,
                MemorySizeBits = MemorySizeBits,
                SegmentSizeBits = SegmentSizeBits,
                FastCommitMode = true,
                TryRecoverLatest = true,
                LogChecksum = LogChecksumType.PerEntry,
                RemoveOutdatedCommits = true,
            },
            cancellationToken);
        _commitLoop = Task.Run(CommitLoopAsync, CancellationToken.None);
    }

    public async ValueTask<LogAddress> AppendAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken = default)
    {
        var log = _log ?? throw new InvalidOperationException("The log is not open.");
        if (record.Length > MaxRecordSize)
        {
            throw new ArgumentException($"Record of {record.Length} bytes exceeds the limit of {MaxRecordSize}.", nameof(record));
        }

        long address, until;
        lock (_enqueueLock)
        {
            address = log.Enqueue(record.Span);
            until = log.TailAddress;
        }

        _commitSignal.Release();
        await log.WaitForCommitAsync(until, token: cancellationToken);
        return new LogAddress(0, address);
    }

    public async IAsyncEnumerable<LogRecord> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var log = _log ?? throw new InvalidOperationException("The log is not open.");
        using var iterator = log.Scan(log.BeginAddress, log.CommittedUntilAddress);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (iterator.GetNext(MemoryPool<byte>.Shared, out var owner, out var length, out var address))
            {
                yield return new LogRecord(new LogAddress(0, address), owner, length);
                continue;
            }

            if (iterator.Ended || iterator.NextAddress >= log.CommittedUntilAddress)
            {
                yield break;
            }

            if (!await iterator.WaitAsync(cancellationToken))
            {
                yield break;
            }
        }
    }

    public async ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default)
    {
        var log = _log ?? throw new InvalidOperationException("The log is not open.");
        try
        {
            var (owner, length) = await log.ReadAsync(address.EntryId, MemoryPool<byte>.Shared, 0, cancellationToken);
            if (owner is null)
            {
                throw new DataCorruptionException($"No record at {address} in {_directory}.");
            }

            return new LogRecord(address, owner, length);
        }
        catch (FasterException e)
        {
            throw new DataCorruptionException($"Reading {address} in {_directory} failed: {e.Message}");
        }
    }

    public ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default)
    {
        var log = _log ?? throw new InvalidOperationException("The log is not open.");
        log.TruncateUntil(upTo.EntryId);
        _commitSignal.Release();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_commitLoop is not null)
        {
            await _commitLoop;
        }

        if (_log is not null)
        {
            // Whatever was acknowledged is already committed; this only makes a clean shutdown quicker to recover.
            try
            {
                await _log.CommitAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException or FasterException or InvalidOperationException)
            {
                // A failed final commit loses nothing acknowledged.
            }

            _log.Dispose();
        }

        _device?.Dispose();
        if (_ownerLock is not null)
        {
            await _ownerLock.DisposeAsync();
        }

        _stop.Dispose();
        _commitSignal.Dispose();
    }

    private async Task CommitLoopAsync()
    {
        var log = _log!;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await _commitSignal.WaitAsync(_stop.Token);
                // Drain the signal: one commit covers every record enqueued so far.
                while (_commitSignal.CurrentCount > 0)
                {
                    await _commitSignal.WaitAsync(_stop.Token);
                }

                while (log.CommittedUntilAddress < log.TailAddress || log.CommittedBeginAddress < log.BeginAddress)
                {
                    await log.CommitAsync(_stop.Token);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }
}
