using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.SegmentStore.Containers;
using Streams.SegmentStore.Logs;
using static Streams.SegmentStore.Tests.ContainerTesting;

namespace Streams.SegmentStore.Tests.Logs;

/// <summary>The durable operation pipeline (OperationLog.cs): ordering, durable answers, back-pressure and failure.</summary>
public sealed class OperationLogTests
{
    private static readonly SegmentMetadata Target = new(7, "scope/stream/7.#epoch.0", 123);

    /// <summary>Applies nothing: answers every operation with success, as a metadata would, and records the addresses.</summary>
    private sealed class AnsweringApplier : IOperationApplier
    {
        public List<LogAddress> Applied { get; } = [];

        public int Stops { get; private set; }

        public void ApplyDurable(PendingFrame frame, LogAddress address, List<DurableAnswer> answers, HashSet<SegmentMetadata> changed)
        {
            frame.Builder.Dispose();
            lock (Applied)
            {
                Applied.Add(address);
            }

            foreach (var op in frame.Operations)
            {
                if (op.Callback is not null)
                {
                    answers.Add(new DurableAnswer(op.Callback, op.Token, new OperationOutcome(OutcomeStatus.Success, op.Offset)));
                }
            }

            frame.Applied = true;
        }

        public void OnLogStopped() => Stops++;
    }

    /// <summary>Counts the answers each token gets.</summary>
    private sealed class CountingCallback : IOperationCallback
    {
        private readonly Dictionary<long, List<OperationOutcome>> _answers = [];

        public List<OperationOutcome> For(long token)
        {
            lock (_answers)
            {
                return _answers.TryGetValue(token, out var list) ? [.. list] : [];
            }
        }

        public void OnCompleted(long token, in OperationOutcome outcome)
        {
            lock (_answers)
            {
                if (!_answers.TryGetValue(token, out var list))
                {
                    _answers[token] = list = [];
                }

                list.Add(outcome);
            }
        }
    }

    private static OperationLog Started(InMemoryDurableDataLog durable, IOperationApplier applier, long nextSequence = 0, ContainerOptions? options = null)
    {
        var log = new OperationLog(0, durable, options ?? new ContainerOptions(), NullLogger.Instance);
        log.Start(nextSequence, applier);
        return log;
    }

    private static PendingOperation Append(long offset, int length, IOperationCallback? callback = null, long token = 0) => new()
    {
        Type = OperationType.Append, Segment = Target, Offset = offset, Length = length, Writer = WriterA, EventNumber = offset, EventCount = 1,
        Callback = callback, Token = token,
    };

    [Fact]
    public async Task Every_kind_of_record_is_written_in_order_in_the_log_format_with_consecutive_sequence_numbers()
    {
        var durable = new InMemoryDurableDataLog();
        var callback = new CountingCallback();
        var chunk = new ChunkInfo("containers/0/segments/7/0000000000000000000.e1", 0, 5, 99);
        await using (var log = Started(durable, new AnsweringApplier(), nextSequence: 42))
        {
            var data = Events("abc");
            Assert.Equal(LogAcceptance.Accepted, log.TryAdd(new PendingOperation { Type = OperationType.CreateSegment, Segment = Target, Callback = callback, Token = 1 }));
            Assert.Equal(LogAcceptance.Accepted, log.TryAppend(Append(0, data.Length, callback, 2), new ReadOnlySequence<byte>(data)));
            Assert.Equal(LogAcceptance.Accepted, log.TryAdd(new PendingOperation { Type = OperationType.Seal, Segment = Target, Offset = data.Length, Callback = callback, Token = 3 }));
            Assert.Equal(LogAcceptance.Accepted, log.TryAdd(new PendingOperation { Type = OperationType.Truncate, Segment = Target, Offset = 4, Callback = callback, Token = 4 }));
            Assert.Equal(LogAcceptance.Accepted, log.TryAdd(new PendingOperation { Type = OperationType.StorageFlushed, Segment = Target, Offset = 5, Length = 5, Callback = callback, Token = 5 },
                StorageRecords.Flushed(Target.Id, chunk)));
            Assert.Equal(LogAcceptance.Accepted, log.TryAdd(new PendingOperation { Type = OperationType.Delete, Segment = Target, Callback = callback, Token = 6 }));
            await ContainerTesting.WaitUntilAsync(() => callback.For(6).Count == 1, "every operation is durable");
        }

        var operations = new List<(DataFrame.Operation Operation, byte[] Record)>();
        var sequence = 42L;
        foreach (var record in durable.Records)
        {
            Assert.Equal(sequence++, DataFrame.Verify(record, "test").Sequence);
            foreach (var op in DataFrame.Operations(record))
            {
                operations.Add((op, record));
            }
        }

        var ops = operations.Select(o => o.Operation).ToList();
        Assert.Equal([OperationType.CreateSegment, OperationType.Append, OperationType.Seal, OperationType.Truncate, OperationType.StorageFlushed, OperationType.Delete],
            ops.Select(o => o.Type));
        Assert.All(ops, o => Assert.Equal(Target.Id, o.SegmentId));
        Assert.Equal((123L, Target.Name), (ops[0].Value, ops[0].Name));
        Assert.Equal((0L, WriterA, 0L), (ops[1].Value, ops[1].WriterId, ops[1].LastEventNumber));
        Assert.Equal(Events("abc"), operations[1].Record.AsSpan(ops[1].DataOffset, ops[1].DataLength).ToArray());
        Assert.Equal((Events("abc").Length, 4L), (ops[2].Value, ops[3].Value));
        var (flush, flushRecord) = operations[4];
        Assert.Equal(StorageRecords.Flushed(Target.Id, chunk), flushRecord.AsSpan(flush.DataOffset, flush.DataLength).ToArray());
        Assert.All(Enumerable.Range(1, 6), t => Assert.Single(callback.For(t)));
    }

    [Fact]
    public async Task A_barrier_waits_for_everything_accepted_before_it_and_nothing_pending_means_answer_now()
    {
        var durable = new InMemoryDurableDataLog();
        var callback = new CountingCallback();
        await using var log = Started(durable, new AnsweringApplier());
        Assert.False(log.TryAttachBarrier(new PendingOperation { Type = OperationType.SetupBarrier, Segment = Target, Callback = callback, Token = 9 }));

        durable.Gate = new TaskCompletionSource();
        var data = Events("first");
        Assert.Equal(LogAcceptance.Accepted, log.TryAppend(Append(0, data.Length, callback, 1), new ReadOnlySequence<byte>(data)));
        Assert.True(log.TryAttachBarrier(new PendingOperation { Type = OperationType.SetupBarrier, Segment = Target, Callback = callback, Token = 2 }));
        await Task.Delay(50);
        Assert.Empty(callback.For(2));

        durable.Gate.SetResult();
        await ContainerTesting.WaitUntilAsync(() => callback.For(2).Count == 1, "the barrier is answered");
        Assert.Single(callback.For(1));
        Assert.Empty(callback.For(9));
    }

    [Fact]
    public async Task After_a_failure_every_pending_operation_is_answered_once_and_nothing_more_is_taken()
    {
        var durable = new InMemoryDurableDataLog { Gate = new TaskCompletionSource() };
        var callback = new CountingCallback();
        var applier = new AnsweringApplier();
        await using var log = Started(durable, applier, options: new ContainerOptions { MaxFrameSize = 64 * 1024, MaxConcurrentWrites = 1 });
        var block = Events(new string('x', 40 * 1024));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(LogAcceptance.Accepted, log.TryAppend(Append(i * block.Length, block.Length, callback, i), new ReadOnlySequence<byte>(block)));
        }

        durable.FailAppends = true;
        durable.Gate.SetResult();
        await log.Failed.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(ContainerState.Failed, log.State);
        Assert.All(Enumerable.Range(0, 5), i => Assert.Equal(OutcomeStatus.ContainerUnavailable, Assert.Single(callback.For(i)).Status));
        Assert.Empty(applier.Applied);
        Assert.Equal(1, applier.Stops);
        Assert.Equal(LogAcceptance.Unavailable, log.TryAppend(Append(0, block.Length, callback, 10), new ReadOnlySequence<byte>(block)));
        Assert.Equal(LogAcceptance.Unavailable, log.TryAdd(new PendingOperation { Type = OperationType.Delete, Segment = Target, Callback = callback, Token = 11 }));
        Assert.NotNull(log.Unavailable());
    }

    [Fact]
    public async Task A_failing_log_fails_pending_operations_and_the_container()
    {
        var log = new InMemoryDurableDataLog();
        await using var container = await StartWithSegmentAsync(log);
        log.Gate = new TaskCompletionSource();
        var pending = container.AppendAsync(Segment, WriterA, 0, 1, null, Events("never acknowledged"));
        await Task.Delay(50);
        log.FailAppends = true;
        log.Gate.SetResult();

        var outcome = await pending;
        Assert.Equal(OutcomeStatus.ContainerUnavailable, outcome.Status);
        await container.Failed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ContainerState.Failed, container.State);
        Assert.Equal(OutcomeStatus.ContainerUnavailable, (await container.AppendAsync(Segment, WriterA, 1, 1, null, Events("later"))).Status);
    }

    [Fact]
    public async Task A_full_pipeline_pushes_back()
    {
        var log = new InMemoryDurableDataLog { Gate = new TaskCompletionSource() };
        await using var container = Create(log, options: new ContainerOptions { MaxFrameSize = 64 * 1024, MaxPendingFrames = 2, MaxConcurrentWrites = 1 });
        await container.StartAsync();
        log.Gate = null;
        await container.CreateSegmentAsync(Segment);
        log.Gate = new TaskCompletionSource();

        var block = new ReadOnlySequence<byte>(Events(new string('x', 60 * 1024)));
        var callbacks = new List<OperationCompletion>();
        var accepted = 0;
        AppendAcceptance acceptance;
        do
        {
            var callback = new OperationCompletion();
            acceptance = container.TryAppend(Segment, WriterA, accepted, 1, null, block, callback, 0, out _);
            if (acceptance == AppendAcceptance.Accepted)
            {
                callbacks.Add(callback);
                accepted++;
            }
        }
        while (acceptance == AppendAcceptance.Accepted && accepted < 100);

        Assert.Equal(AppendAcceptance.NoCapacity, acceptance);
        Assert.InRange(accepted, 1, 3);
        var capacity = container.WaitForCapacityAsync(CancellationToken.None);
        Assert.False(capacity.IsCompleted);
        log.Gate.SetResult();
        await capacity.WaitAsync(TimeSpan.FromSeconds(5));
        await Task.WhenAll(callbacks.Select(c => c.Task)).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.All(callbacks, c => Assert.True(c.Task.Result.IsSuccess));
    }
}
