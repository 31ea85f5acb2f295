using System.Runtime.CompilerServices;

namespace Streams.SegmentStore.Tests;

/// <summary>
/// A log whose opening (the start of a container's recovery) waits for the test to release it, so a test decides
/// exactly when a recovery ends; the rest goes to an <see cref="InMemoryDurableDataLog"/>. With
/// <see cref="IgnoreCancellation"/> the open goes on after a cancellation, as a call already on the wire does.
/// </summary>
internal sealed class GatedDurableDataLog(InMemoryDurableDataLog inner) : IDurableDataLog
{
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    public GatedDurableDataLog()
        : this(new InMemoryDurableDataLog())
    {
    }

    public InMemoryDurableDataLog Inner => inner;

    /// <summary>Released by the test to let the open (and the recovery) go on.</summary>
    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the open has begun (the recovery waits at the gate).</summary>
    public Task Opened => _opened.Task;

    public bool IgnoreCancellation { get; init; }

    /// <summary>Makes the open fail once released, as it does when another owner fenced the log first.</summary>
    public bool FailOpen { get; init; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public int MaxRecordSize => inner.MaxRecordSize;

    public long Epoch => inner.Epoch;

    public async ValueTask OpenAsync(CancellationToken cancellationToken = default)
    {
        _opened.TrySetResult();
        await (IgnoreCancellation ? Gate.Task : Gate.Task.WaitAsync(cancellationToken));
        if (FailOpen)
        {
            throw new InvalidOperationException("Injected: the log was fenced by another owner.");
        }

        await inner.OpenAsync(cancellationToken);
    }

    public ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default) => inner.CheckOwnershipAsync(cancellationToken);

    public ValueTask<LogAddress> AppendAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken = default) =>
        IsDisposed ? throw new ObjectDisposedException("log") : inner.AppendAsync(record, cancellationToken);

    public async IAsyncEnumerable<LogRecord> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var record in inner.ReadAllAsync(cancellationToken))
        {
            if (IsDisposed)
            {
                record.Dispose();
                throw new ObjectDisposedException("log", "Recovery read a log that was already closed.");
            }

            yield return record;
        }
    }

    public ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default) => inner.ReadAsync(address, cancellationToken);

    public ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default) => inner.TruncateAsync(upTo, cancellationToken);

    public ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _disposed, 1);
        return inner.DisposeAsync();
    }
}
