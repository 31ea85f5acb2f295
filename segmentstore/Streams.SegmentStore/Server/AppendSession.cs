using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using Streams.Common.Naming;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;
using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Server;

/// <summary>
/// The append side of one client connection (raw carrier) or one Append call (gRPC): it remembers which
/// (writer, segment) each request id names, hands blocks to containers and turns outcomes into replies.
/// <para>
/// Ordering: blocks of one request id reach the container in the order received. Once a block of a request id
/// fails with "retry" (its container failed or restarted), every later block of that id is refused too, until
/// the client sets it up again: otherwise a later block could land before the failed one is re-sent.
/// </para>
/// <para>
/// Memory: a session remembers one registration per (writer, segment): a writer that sets up again under a new
/// request id (after a "retry", or on a reconnect of the same carrier) replaces its earlier one. Beyond
/// <see cref="MaxRegistrations"/>, the one used longest ago is forgotten; a block for it is answered "not set up", and
/// its writer sets up again. A long-lived connection whose writers come and go therefore stays bounded.
/// </para>
/// <para>
/// Tracing: one span per session, from its first setup until <see cref="Dispose"/>, with an event per setup; never
/// anything per block.
/// </para>
/// </summary>
public sealed class AppendSession : IDisposable
{
    /// <summary>
    /// Registrations one session keeps: far more writers than one client process runs against one segment store
    /// (each is a few hundred bytes), so only a client that never reuses its writers reaches it.
    /// </summary>
    public const int MaxRegistrations = 4096;

    private readonly SegmentStoreService _store;
    private readonly Action<AppendReply> _send;
    private readonly ConcurrentDictionary<long, Registration> _registrations = new();
    private readonly Dictionary<(string Segment, Guid Writer), long> _latest = new();
    private readonly SetupCallback _setupCallback;
    private readonly BlockCallback _blockCallback;
    private readonly object _drainLock = new();
    private TaskCompletionSource? _drained;
    private int _outstanding;
    private Activity? _activity;

    public AppendSession(SegmentStoreService store, Action<AppendReply> send)
    {
        _store = store;
        _send = send;
        _setupCallback = new SetupCallback(this);
        _blockCallback = new BlockCallback(this);
    }

    /// <summary>Request ids this session remembers (at most <see cref="MaxRegistrations"/>).</summary>
    public int Registrations => _registrations.Count;

    /// <summary>Requests received and not yet answered. Every request gets exactly one reply.</summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>Completes when every request received so far has been answered.</summary>
    public Task DrainAsync(CancellationToken cancellationToken)
    {
        lock (_drainLock)
        {
            if (_outstanding == 0)
            {
                return Task.CompletedTask;
            }

            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task.WaitAsync(cancellationToken);
        }
    }

    public void OnSetup(SetupAppend setup)
    {
        Interlocked.Increment(ref _outstanding);
        if (setup.WriterId.Length != 16)
        {
            Reject(setup.RequestId, AppendError.InvalidBlock, $"writer_id must be 16 bytes (a UUID), not {setup.WriterId.Length}.", -1);
            return;
        }

        if (!TransactionName.IsSegmentOrTransaction(setup.Segment))
        {
            Reject(setup.RequestId, AppendError.NoSuchSegment, $"'{setup.Segment}' is not a segment name (expected scope/stream/number.#epoch.N).", -1);
            return;
        }

        // Answered at once, unless the container is recovering here: then once it serves. No block of the request id
        // comes before the answer, so the wait reorders nothing.
        var resolving = _store.ContainerForAsync(setup.Segment, CancellationToken.None);
        if (resolving.IsCompletedSuccessfully)
        {
            Accept(setup, resolving.Result);
        }
        else
        {
            _ = AcceptWhenResolvedAsync(setup, resolving);
        }
    }

    private async Task AcceptWhenResolvedAsync(SetupAppend setup, ValueTask<(SegmentContainer?, OperationOutcome)> resolving) =>
        Accept(setup, await resolving);

    private void Accept(SetupAppend setup, (SegmentContainer? Container, OperationOutcome Error) resolved)
    {
        if (resolved.Container is not { } container)
        {
            Reject(setup.RequestId, AppendError.Retry, resolved.Error.Message!, -1);
            return;
        }

        var writer = new Guid(setup.WriterId.Span);
        lock (_latest)
        {
            TraceSetup(setup.Segment, writer);
            Register(setup.RequestId, new Registration(setup.Segment, writer, container));
        }

        container.SetupAppend(setup.Segment, writer, _setupCallback, setup.RequestId);
    }

    /// <summary>
    /// Hands a block to its container. The block's data is copied before this completes; when the pipeline is
    /// full this waits (back-pressure), holding the caller's receive buffer, so the client is slowed down.
    /// </summary>
    public async ValueTask OnBlockAsync(AppendBlockHeader header, ReadOnlySequence<byte> data, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _outstanding);
        if (!_registrations.TryGetValue(header.RequestId, out var registration))
        {
            Reject(header.RequestId, AppendError.NotSetUp, $"Request id {header.RequestId} was not set up on this connection.", header.LastEventNumber);
            return;
        }

        registration.Touch();
        if (registration.Broken)
        {
            Reject(header.RequestId, AppendError.Retry, "An earlier block of this writer failed; set up again and re-send.", header.LastEventNumber);
            return;
        }

        while (true)
        {
            var acceptance = registration.Container.TryAppend(
                registration.Segment, registration.Writer, header.LastEventNumber, header.EventCount, header.ExpectedOffset,
                data, _blockCallback, header.RequestId, out var outcome, header.KeySample);
            if (acceptance == AppendAcceptance.Accepted)
            {
                return;
            }

            if (acceptance == AppendAcceptance.Completed)
            {
                OnBlockOutcome(header.RequestId, outcome, header.LastEventNumber);
                return;
            }

            await registration.Container.WaitForCapacityAsync(cancellationToken);
        }
    }

    /// <summary>Remembers a setup, forgetting the writer's earlier one and, when full, the one used longest ago.</summary>
    private void Register(long requestId, Registration registration)
    {
        // Called under the _latest lock: a setup that waited for its container races the connection's next ones.
        if (_latest.TryGetValue((registration.Segment, registration.Writer), out var earlier) && earlier != requestId)
        {
            _registrations.TryRemove(earlier, out _);
        }

        _latest[(registration.Segment, registration.Writer)] = requestId;
        _registrations[requestId] = registration;
        if (_registrations.Count <= MaxRegistrations)
        {
            return;
        }

        var oldest = (Id: 0L, Used: long.MaxValue);
        foreach (var (id, candidate) in _registrations)
        {
            if (id != requestId && candidate.LastUsed < oldest.Used)
            {
                oldest = (id, candidate.LastUsed);
            }
        }

        if (_registrations.TryRemove(oldest.Id, out var forgotten))
        {
            _latest.Remove((forgotten.Segment, forgotten.Writer));
        }
    }

    /// <summary>Ends the session's span.</summary>
    public void Dispose() => _activity?.Dispose();

    private void TraceSetup(string segment, Guid writer)
    {
        _activity ??= SegmentStoreTracing.StartSession("AppendSession");
        _activity?.AddEvent(new ActivityEvent("setup", tags: new ActivityTagsCollection
        {
            ["streams.segment"] = segment,
            ["streams.writer"] = writer.ToString(),
        }));
    }

    private void OnBlockOutcome(long requestId, in OperationOutcome outcome, long blockEventNumber)
    {
        if (outcome.IsSuccess)
        {
            Send(new AppendReply
            {
                Appended = new DataAppended { RequestId = requestId, LastEventNumber = outcome.EventNumber, SegmentLength = outcome.SegmentLength },
            });
            return;
        }

        if (outcome.Status == OutcomeStatus.ContainerUnavailable && _registrations.TryGetValue(requestId, out var registration))
        {
            registration.Broken = true;
        }

        Reject(requestId, ErrorOf(outcome.Status), outcome.Message ?? outcome.Status.ToString(), blockEventNumber, outcome.SegmentLength);
    }

    private void OnSetupOutcome(long requestId, in OperationOutcome outcome)
    {
        if (!_registrations.TryGetValue(requestId, out var registration))
        {
            Reject(requestId, ErrorOf(outcome.Status), outcome.Message ?? outcome.Status.ToString(), -1);
            return;
        }

        if (outcome.IsSuccess)
        {
            // Everything accepted before the setup is durable now. On a sealed segment the writer's number is final:
            // read it again (blocks it sent right after the setup may have landed before the seal), and the writer
            // moves the rest to the successors instead of being refused here.
            var (isSealed, durable, inherited) = registration.Container.DescribeWriter(registration.Segment, registration.Writer);
            var setup = new AppendSetup
            {
                RequestId = requestId, Segment = registration.Segment,
                LastEventNumber = isSealed ? Math.Max(outcome.EventNumber, durable) : outcome.EventNumber, Sealed = isSealed,
            };
            foreach (var range in inherited)
            {
                setup.Inherited.Add(SegmentRequests.ToContract(range));
            }

            Send(new AppendReply { Setup = setup });
            return;
        }

        registration.Broken = true;
        Reject(requestId, ErrorOf(outcome.Status), outcome.Message ?? outcome.Status.ToString(), -1);
    }

    private void Send(AppendReply reply)
    {
        _send(reply);
        if (Interlocked.Decrement(ref _outstanding) == 0)
        {
            TaskCompletionSource? drained;
            lock (_drainLock)
            {
                drained = _outstanding == 0 ? _drained : null;
                if (drained is not null)
                {
                    _drained = null;
                }
            }

            drained?.TrySetResult();
        }
    }

    private void Reject(long requestId, AppendError error, string message, long eventNumber, long segmentLength = 0) =>
        Send(new AppendReply
        {
            Rejected = new AppendRejected
            {
                RequestId = requestId, Error = error, Message = message, LastEventNumber = eventNumber, SegmentLength = segmentLength,
            },
        });

    private static AppendError ErrorOf(OutcomeStatus status) => status switch
    {
        OutcomeStatus.SegmentSealed => AppendError.SegmentSealed,
        OutcomeStatus.NoSuchSegment => AppendError.NoSuchSegment,
        OutcomeStatus.ConditionFailed => AppendError.ConditionFailed,
        OutcomeStatus.InvalidArgument => AppendError.InvalidBlock,
        _ => AppendError.Retry,
    };

    private sealed class Registration(string segment, Guid writer, SegmentContainer container)
    {
        private volatile bool _broken;
        private long _lastUsed = Environment.TickCount64;

        public string Segment { get; } = segment;

        public Guid Writer { get; } = writer;

        public SegmentContainer Container { get; } = container;

        public bool Broken { get => _broken; set => _broken = value; }

        public long LastUsed => Volatile.Read(ref _lastUsed);

        public void Touch() => Volatile.Write(ref _lastUsed, Environment.TickCount64);
    }

    private sealed class SetupCallback(AppendSession session) : IOperationCallback
    {
        public void OnCompleted(long token, in OperationOutcome outcome) => session.OnSetupOutcome(token, outcome);
    }

    private sealed class BlockCallback(AppendSession session) : IOperationCallback
    {
        public void OnCompleted(long token, in OperationOutcome outcome) => session.OnBlockOutcome(token, outcome, outcome.EventNumber);
    }
}
