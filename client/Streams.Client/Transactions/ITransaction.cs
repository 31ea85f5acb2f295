namespace Streams.Client.Transactions;

/// <summary>Where a transaction is in its life.</summary>
public enum TransactionStatus
{
    /// <summary>Takes writes.</summary>
    Open,

    /// <summary>The commit is decided: every event will become visible, also across crashes.</summary>
    Committing,

    /// <summary>Every event is visible.</summary>
    Committed,

    /// <summary>Being aborted: nothing of it will be visible.</summary>
    Aborting,

    /// <summary>Nothing of it is visible, nor ever will be.</summary>
    Aborted,
}

/// <summary>
/// A set of events on one stream that becomes visible together or not at all (docs/transactions.md). Begun with
/// <see cref="Writing.EventStreamWriter{T}.BeginTransactionAsync"/>. Events with one routing key keep their order within
/// the transaction and land after everything written to that key before the commit. Disposing a transaction that was
/// neither committed nor aborted aborts it. Thread-safe.
/// </summary>
public interface ITransaction<in T> : IAsyncDisposable
{
    /// <summary>The transaction's id (32 hex digits): what <c>streams transaction status</c> takes.</summary>
    string Id { get; }

    /// <summary>
    /// Writes an event into the transaction. Completes when it is durable in the transaction (not yet visible);
    /// faults with <see cref="TransactionFailedException"/> once the transaction is no longer open.
    /// </summary>
    Task WriteEventAsync(string? routingKey, T value, CancellationToken cancellationToken = default);

    /// <summary>Completes when every event written so far is durable in the transaction.</summary>
    Task FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Flushes, then commits: completes once every event is visible. Throws <see cref="TransactionFailedException"/>
    /// if the transaction was aborted (its lease expired, or the stream was sealed since it began), in which
    /// case nothing of it is visible. If the call fails otherwise (the controller unreachable), the commit may or may not
    /// have been decided: <see cref="CheckStatusAsync"/> tells.
    /// </summary>
    Task CommitAsync(CancellationToken cancellationToken = default);

    /// <summary>Aborts: nothing of it becomes visible, and its data is deleted.</summary>
    Task AbortAsync(CancellationToken cancellationToken = default);

    /// <summary>Asks the controller where the transaction is.</summary>
    Task<TransactionStatus> CheckStatusAsync(CancellationToken cancellationToken = default);
}

/// <summary>A transaction can no longer do what was asked: it was aborted, or it is already committing.</summary>
public sealed class TransactionFailedException : StreamsException
{
    /// <summary>Creates the exception.</summary>
    public TransactionFailedException(string message, Exception? innerException = null)
        : base(Grpc.Core.StatusCode.FailedPrecondition, message, innerException)
    {
    }
}
