using System.Buffers;
using System.Runtime.CompilerServices;

namespace Streams.SegmentStore.Tests;

/// <summary>
/// A durable log in memory for unit tests of the code above it, with knobs for faults: a delay before each append
/// completes, and a switch that makes appends fail (as a fenced or broken log does). The records survive a
/// "restart" when the same instance's <see cref="Records"/> are handed to a new one.
/// </summary>
internal sealed class InMemoryDurableDataLog(List<byte[]>? records = null) : IDurableDataLog
{
    private readonly object _lock = new();
    private long _begin;

    public List<byte[]> Records { get; } = records ?? [];

    /// <summary>Index of the first record not truncated away (carry it over to a "restarted" log).</summary>
    public long Begin { get => Interlocked.Read(ref _begin); set => Interlocked.Exchange(ref _begin, value); }

    public TimeSpan AppendDelay { get; set; }

    public bool FailAppends { get; set; }

    public TaskCompletionSource? Gate { get; set; }

    /// <summary>As a log on bookies: 10 MiB.</summary>
    public int MaxRecordSize => 10 * 1024 * 1024;

    public long Epoch { get; set; } = 1;

    /// <summary>Another owner took the log over: <see cref="CheckOwnershipAsync"/> fails.</summary>
    public bool TakenOver { get; set; }

    /// <summary>Ownership checks made (each Tier 2 delete makes one).</summary>
    public int OwnershipChecks => Volatile.Read(ref _ownershipChecks);

    private int _ownershipChecks;

    public ValueTask OpenAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _ownershipChecks);
        return TakenOver ? ValueTask.FromException(new InvalidOperationException("Injected: another owner took the log.")) : ValueTask.CompletedTask;
    }

    public async ValueTask<LogAddress> AppendAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken = default)
    {
        if (record.Length > MaxRecordSize)
        {
            throw new ArgumentException($"A record of {record.Length} bytes exceeds the limit of {MaxRecordSize} bytes.");
        }

        if (FailAppends)
        {
            throw new IOException("Injected log failure.");
        }

        long index;
        lock (_lock)
        {
            Records.Add(record.ToArray());
            index = Records.Count - 1;
        }

        if (Gate is { } gate)
        {
            await gate.Task;
        }

        if (AppendDelay > TimeSpan.Zero)
        {
            await Task.Delay(AppendDelay, cancellationToken);
        }

        return FailAppends ? throw new IOException("Injected log failure.") : new LogAddress(0, index);
    }

    public async IAsyncEnumerable<LogRecord> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        for (var i = (int)_begin; i < Records.Count; i++)
        {
            yield return Copy(i);
        }
    }

    /// <summary>Records read back one by one (read-cache misses).</summary>
    public int Reads => Volatile.Read(ref _reads);

    private int _reads;

    public ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _reads);
        return address.EntryId < _begin || address.EntryId >= Records.Count
            ? throw new DataCorruptionException($"No record at {address}.")
            : ValueTask.FromResult(Copy((int)address.EntryId));
    }

    public ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default)
    {
        _begin = upTo.EntryId;
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private LogRecord Copy(int index)
    {
        var bytes = Records[index];
        var owner = MemoryPool<byte>.Shared.Rent(Math.Max(1, bytes.Length));
        bytes.CopyTo(owner.Memory.Span);
        return new LogRecord(new LogAddress(0, index), owner, bytes.Length);
    }
}
