using Streams.Client.Reading;

namespace Streams.Functions;

/// <summary>
/// A function over micro-batches: every event of a batch comes from one segment, in order. The batch is committed once
/// the handler returns and its output is durable; if it throws, the batch is retried (with back-off); after the last
/// attempt each of its events is handled alone once more, and those that still fail go to the dead-letter stream. A batch may be handled again after a crash or a rebalance (at-least-once): write results through
/// <see cref="FunctionBatch{T}.Output{TOut}"/> and they are stored once anyway.
/// </summary>
public interface IStreamFunction<T>
{
    Task HandleAsync(FunctionBatch<T> batch, CancellationToken cancellationToken);
}

/// <summary>A function over single events: <see cref="HandleAsync(EventRead{T}, FunctionBatch{T}, CancellationToken)"/> runs for each event of each batch, in order.</summary>
public abstract class EventFunction<T> : IStreamFunction<T>
{
    public abstract Task HandleAsync(EventRead<T> e, FunctionBatch<T> batch, CancellationToken cancellationToken);

    async Task IStreamFunction<T>.HandleAsync(FunctionBatch<T> batch, CancellationToken cancellationToken)
    {
        foreach (var e in batch.Events)
        {
            await HandleAsync(e, batch, cancellationToken);
        }
    }
}
