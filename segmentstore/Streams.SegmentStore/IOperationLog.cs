using System.Buffers;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;

namespace Streams.SegmentStore;

/// <summary>What the operation log did with an operation handed to it.</summary>
internal enum LogAcceptance
{
    /// <summary>In a frame: it is answered once the frame is durable, or when the log fails.</summary>
    Accepted,

    /// <summary>The pipeline is full (appends only): wait for capacity and try again. Nothing was added.</summary>
    NoCapacity,

    /// <summary>The log is not running (recovering, failed or stopped). Nothing was added.</summary>
    Unavailable,
}

/// <summary>
/// A container's durable operation pipeline: packs accepted operations into frames, writes the frames to the
/// <see cref="IDurableDataLog"/> strictly in order, and once a frame is durable hands it to an
/// <see cref="IOperationApplier"/> and answers its operations.
/// <para>
/// Contract: an operation is answered exactly once, after its frame is durable (success) or when the log fails or stops
/// (<see cref="OutcomeStatus.ContainerUnavailable"/>). Frames are applied one at a time, in log order. The log never
/// validates an operation against segment state (that is the metadata's job) and never calls another part while holding
/// its lock; callers may hold the metadata's lock when they call it (lock order: metadata, then operation log).
/// </para>
/// </summary>
internal interface IOperationLog : IAsyncDisposable
{
    /// <summary>Where the container is in its life: the log's state is the container's.</summary>
    ContainerState State { get; }

    /// <summary>Why the log failed, if it did.</summary>
    Exception? Failure { get; }

    /// <summary>Completes when the log fails (not when it is stopped).</summary>
    Task Failed { get; }

    /// <summary>The owner epoch of the durable log, set once it is open.</summary>
    long Epoch { get; }

    /// <summary>Largest record the durable log accepts.</summary>
    int MaxRecordSize { get; }

    /// <summary>Bytes handed to the durable log since the container started (checkpoint spacing).</summary>
    long LoggedBytes { get; }

    /// <summary>Where the durable log was last truncated: nothing before it can be read from Tier 1 any more.</summary>
    LogAddress TruncatedAt { get; }

    /// <summary>The answer for an operation while the log is not running; null while it runs.</summary>
    OperationOutcome? Unavailable();

    /// <summary>Takes ownership of the durable log (fencing earlier owners); the container is then recovering.</summary>
    ValueTask OpenAsync(CancellationToken cancellationToken = default);

    /// <summary>Reads every record of the durable log from its truncation point (recovery, before <see cref="Start"/>).</summary>
    IAsyncEnumerable<LogRecord> ReadAllAsync(CancellationToken cancellationToken = default);

    /// <summary>Starts the pipeline after recovery: frames continue at <paramref name="nextSequence"/> and go to <paramref name="applier"/>.</summary>
    void Start(long nextSequence, IOperationApplier applier);

    /// <summary>
    /// Copies an append's data into the current frame (exactly once) and queues the operation; its
    /// <see cref="PendingOperation.FrameOffset"/> is set here. Refuses with <see cref="LogAcceptance.NoCapacity"/> when
    /// the data needs a new frame and the pipeline already holds its maximum of frames.
    /// </summary>
    LogAcceptance TryAppend(in PendingOperation append, in ReadOnlySequence<byte> data);

    /// <summary>
    /// Writes a create (with its load seed as <paramref name="body"/>, if any), seal, truncate, delete, or (with its
    /// serialized <paramref name="body"/>) Tier 2 flush or writer-inheritance record and queues the operation. Never
    /// refused for capacity: these are few and small.
    /// </summary>
    LogAcceptance TryAdd(in PendingOperation operation, ReadOnlySpan<byte> body = default);

    /// <summary>
    /// Attaches an answer that must wait until everything accepted so far is durable. Returns false when nothing is
    /// pending: answer at once from the durable view. Call with the metadata's lock held (it decides what "so far" is).
    /// </summary>
    bool TryAttachBarrier(in PendingOperation barrier);

    /// <summary>
    /// Queues a checkpoint after everything accepted so far; whatever is accepted later goes to later frames. Its pages
    /// are written as consecutive records once serialized; if serializing fails, so does the log.
    /// </summary>
    LogAcceptance TryAddCheckpoint(PendingCheckpoint checkpoint);

    /// <summary>
    /// Waits until the pipeline has room for more frames, or (when <paramref name="overBudget"/>) up to a second for any
    /// progress, so the caller re-checks its budget and timeout.
    /// </summary>
    Task WaitForCapacityAsync(bool overBudget, CancellationToken cancellationToken);

    /// <summary>Reads one durable record back (a read-cache miss).</summary>
    ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default);

    /// <summary>Discards every record before <paramref name="upTo"/>; then <see cref="TruncatedAt"/> is it.</summary>
    ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default);

    /// <summary>Confirms that nobody took the durable log over (see <see cref="IDurableDataLog.CheckOwnershipAsync"/>).</summary>
    ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default);

    /// <summary>Stops taking operations and stops writing; frames already handed to the durable log still get answers.</summary>
    void Stop();
}
