using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Grpc.Core;
using Streams.Client.Internal;
using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

// Why it is built this way:
// * One exchange loop talks to the controller (ReaderExchange, unary): it joins, then calls at least every third of the
//   heartbeat interval, and at once when a release or completion waits. Every message the reader owes (commits,
//   releases, completions) goes out with the next call; a call that fails transiently is retried with the same
//   messages for up to the reconnect timeout, so nothing queued is lost to a controller failover.
// * Each assigned segment has its own read loop (SegmentEventReader, as the whole-stream reader) writing into one
//   bounded channel: memory is bounded by BufferedReads × ReadSize whatever the number of segments.
// * Commits never pass what the application consumed: Committed ≤ Consumed ≤ Yielded, and a segment is completed only
//   once it was read to its final offset and everything it delivered is committed, released only once its read loop
//   stopped and everything it delivered was consumed. A fenced segment (or a fenced session's every segment) is "gone": its buffered events are skipped and
//   nothing more is sent for it.
// * A checkpoint request is answered with the next exchange, at once rather than at the next heartbeat, with the
//   committed positions of every segment held: what the application processed, never what is only buffered or in its
//   hands. The commits and completions owed go out ahead of it in the same exchange, so the controller's cut and its
//   stored commits agree. A request repeated under the same name is answered again, with the positions of then.

/// <summary>
/// A reader of a reader group: the controller hands it segments of the group's streams, and it reads them, commits
/// what the application processed, and gives segments back when asked, so each event is read by one reader of the
/// group and a reader that dies is taken over from its last commits. Events of one segment come in order; events of
/// different segments interleave. Create it with <see cref="StreamsClient.CreateReader{T}(string, string, string, IEventSerializer{T}, GroupReaderOptions?)"/>;
/// dispose it to leave the group at once (otherwise its segments move to others only after the session timeout).
/// </summary>
public sealed partial class GroupReader<T> : IAsyncDisposable
{
    /// <summary>The heartbeat interval the controller uses when it names none (the wire's "0 means 3000").</summary>
    private static readonly TimeSpan DefaultHeartbeat = TimeSpan.FromSeconds(3);

    /// <summary>Pause between attempts of an exchange that failed transiently.</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly string _scope;
    private readonly string _group;
    private readonly GroupReaderOptions _options;
    private readonly ControllerClient _controller;
    private readonly SegmentEventReader<T> _segments;
    private readonly TimeSpan _reconnectTimeout;
    private readonly Channel<(GroupAssignment Assignment, List<EventRead<T>> Events)> _events;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly object _lock = new();

    // Guarded by _lock.
    private readonly Dictionary<long, GroupAssignment> _assignments = [];
    private readonly List<ReaderMessage> _outbox = [];
    private readonly List<TaskCompletionSource> _flushes = [];
    private readonly List<string> _checkpoints = [];
    private long _sessionEpoch;
    private bool _joined;
    private TimeSpan _period = DefaultHeartbeat / 3;
    private (GroupAssignment Assignment, long NextOffset)? _pending;
    private StreamsException? _failure;

    private Task _loop = Task.CompletedTask;
    private int _started;
    private int _disposed;

    internal GroupReader(string scope, string group, string readerId, IEventSerializer<T> serializer, GroupReaderOptions options, ControllerClient controller, ConnectionPool pool, TimeSpan reconnectTimeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(scope);
        ArgumentException.ThrowIfNullOrEmpty(group);
        ArgumentException.ThrowIfNullOrEmpty(readerId);
        ArgumentNullException.ThrowIfNull(serializer);
        options.Validate();
        _scope = scope;
        _group = group;
        ReaderId = readerId;
        _options = options;
        _controller = controller;
        _reconnectTimeout = reconnectTimeout;
        _segments = new SegmentEventReader<T>(serializer, controller, pool, reconnectTimeout, options.ReadSize, options.TailWait);
        _events = Channel.CreateBounded<(GroupAssignment, List<EventRead<T>>)>(new BoundedChannelOptions(options.BufferedReads) { SingleReader = true });
    }

    /// <summary>This reader's id in the group: joining again with it replaces the older session.</summary>
    public string ReaderId { get; }

    /// <summary>
    /// Joins the group and yields the events of the segments assigned to this reader, until the group ends (every
    /// segment completed; the enumeration ends once everything yielded is processed and committed) or the enumeration
    /// is cancelled. With <see cref="GroupReaderOptions.AutoCommit"/>, asking for the next event marks the previous one
    /// processed, and so does ending the enumeration early: an event whose processing failed with an exception that
    /// ends the enumeration counts as processed too. A checkpoint of the group takes this reader's commits as they are
    /// when the controller asks; a reset of the group drops what this reader buffered of its old segments and yields
    /// them again from the reset's cuts. Can be enumerated once per reader. Throws
    /// <see cref="StreamsException"/> if the group does not exist, the controller or a segment store stays unreachable
    /// beyond the client's reconnect timeout, or stored data is not a valid event sequence.
    /// </summary>
    public async IAsyncEnumerable<EventRead<T>> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("A group reader is enumerated once; create another reader (with another id) to read in parallel.");
        }

        _loop = Task.Run(ExchangeLoopAsync);
        try
        {
            while (await _events.Reader.WaitToReadAsync(cancellationToken))
            {
                while (_events.Reader.TryRead(out var item))
                {
                    foreach (var e in item.Events)
                    {
                        // One lock per event: the application asked for this one, so the one before is consumed.
                        lock (_lock)
                        {
                            ConsumePendingLocked();
                            if (item.Assignment.Gone)
                            {
                                break;
                            }

                            item.Assignment.Yielded = e.Position.NextOffset;
                            _pending = (item.Assignment, e.Position.NextOffset);
                        }

                        yield return e;
                    }

                    // Before waiting for more, the last event handed out is consumed (a release or a completion may wait for it).
                    ConsumePending();
                }
            }

            // The group ended: what was processed is committed before the enumeration says so.
            await FlushAsync(cancellationToken);
        }
        finally
        {
            ConsumePending();
        }
    }

    /// <summary>
    /// Marks <paramref name="e"/> (and every earlier event of its segment) processed; it is committed with the next
    /// exchange. For <see cref="GroupReaderOptions.AutoCommit"/> = false. Ignored if its segment is no longer this
    /// reader's. Throws <see cref="ArgumentException"/> for an event this reader did not yield.
    /// </summary>
    public void Commit(EventRead<T> e) => CommitPosition(e.Position);

    /// <summary>
    /// Marks the event at <paramref name="position"/> (and every earlier one of its segment) processed, and returns once
    /// an exchange carried the commit to the controller. Otherwise as <see cref="Commit(EventRead{T})"/>.
    /// </summary>
    public Task CommitAsync(EventPosition position, CancellationToken cancellationToken = default)
    {
        CommitPosition(position);
        return FlushAsync(cancellationToken);
    }

    private void CommitPosition(EventPosition position)
    {
        lock (_lock)
        {
            foreach (var a in _assignments.Values)
            {
                if (a.Segment != position.Segment)
                {
                    continue;
                }

                if (position.NextOffset > a.Yielded)
                {
                    throw new ArgumentException($"Offset {position.NextOffset} of {position.Segment} is past what this reader yielded ({a.Yielded}).", nameof(position));
                }

                Advance(a, consumed: a.Consumed, committed: position.NextOffset);
            }
        }
    }

    /// <summary>
    /// Leaves the group: sends Leave with the final commits (best effort; a reader that cannot reach the controller
    /// leaves by expiry), and stops reading. Never throws for the controller's sake.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ConsumePending();
        await _stop.CancelAsync();
        await SwallowAsync(_loop);
        GroupAssignment[] held;
        List<ReaderMessage> messages;
        lock (_lock)
        {
            held = [.. _assignments.Values];
            foreach (var a in held)
            {
                a.Cancel.Cancel();
            }
        }

        await Task.WhenAll(held.Select(a => SwallowAsync(a.Reading)));
        lock (_lock)
        {
            messages = _joined ? [.. _outbox, new ReaderMessage { Leave = Leave() }] : [];
            _outbox.Clear();
            FailFlushes(new ObjectDisposedException(nameof(GroupReader<T>)));
        }

        if (messages.Count > 0)
        {
            try
            {
                await ExchangeAsync(messages, CancellationToken.None);
            }
            catch (Exception e) when (e is StreamsException or OperationCanceledException)
            {
                // Best effort: the session expires after its timeout instead.
            }
        }

        _events.Writer.TryComplete();
        _stop.Dispose();
        _wake.Dispose();
    }

    private Leave Leave()
    {
        var leave = new Leave { SessionEpoch = _sessionEpoch };
        foreach (var a in _assignments.Values)
        {
            leave.Positions.Add(a.Position(a.Committed));
        }

        return leave;
    }

    /// <summary>The event last yielded is processed, now that the application asked for the next one (or stopped).</summary>
    private void ConsumePending()
    {
        lock (_lock)
        {
            ConsumePendingLocked();
        }
    }

    private void ConsumePendingLocked()
    {
        if (_pending is not { } pending)
        {
            return;
        }

        _pending = null;
        var a = pending.Assignment;
        Advance(a, pending.NextOffset, _options.AutoCommit ? pending.NextOffset : a.Committed);
    }

    /// <summary>Moves a segment's consumed and committed offsets forward (never back), then settles it. Under the lock.</summary>
    private void Advance(GroupAssignment a, long consumed, long committed)
    {
        if (a.Gone)
        {
            return;
        }

        a.Consumed = Math.Max(a.Consumed, consumed);
        a.Committed = Math.Max(a.Committed, committed);
        Settle(a);
    }

    /// <summary>
    /// Completes or releases a segment once it may be: completed when it was read to its final offset and every event
    /// it delivered is committed (a revoked one too, as it needs no successor reader then); released when it was
    /// revoked, its read loop stopped, and every event it delivered was consumed. The last event delivered ordinarily
    /// ends at the final offset; bytes after it without events (truncated away, or an assignment that starts at its
    /// end) need no commit. Under the lock.
    /// </summary>
    private void Settle(GroupAssignment a)
    {
        if (a.Gone || !a.ReadingDone)
        {
            return;
        }

        if (a.FinalOffset is { } end && a.Committed >= a.Queued)
        {
            Finish(a, new ReaderMessage { Completed = new SegmentCompleted { SessionEpoch = _sessionEpoch, OwnerEpoch = a.OwnerEpoch, Position = a.Position(end) } });
        }
        else if (a.Revoked && a.Consumed >= a.Queued && (_options.AutoCommit || a.Committed >= a.Queued))
        {
            // With manual commits, "consumed" may only mean handed on (a function host's queue): the segment goes back
            // once what it delivered is committed, so its next reader does not process it at the same time.
            Finish(a, new ReaderMessage { Release = new Release { SessionEpoch = _sessionEpoch, OwnerEpoch = a.OwnerEpoch, Position = a.Position(a.Committed) } });
        }
    }

    private void Finish(GroupAssignment a, ReaderMessage message)
    {
        Drop(a);
        _outbox.Add(message);
        Wake();
    }

    /// <summary>Forgets a segment: its reading stops, its buffered events are skipped, nothing more is sent for it. Under the lock.</summary>
    private void Drop(GroupAssignment a)
    {
        a.Gone = true;
        a.Cancel.Cancel();
        _assignments.Remove(a.SegmentId);
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (ObjectDisposedException)
        {
            // Disposed: nothing exchanges any more.
        }
    }

    /// <summary>Waits until an exchange that starts after this call has succeeded.</summary>
    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        var flushed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_failure is not null)
            {
                throw _failure;
            }

            if (_loop.IsCompleted)
            {
                throw new InvalidOperationException("Nothing exchanges with the controller: the reader is not being read (ReadAsync) or was disposed.");
            }

            _flushes.Add(flushed);
        }

        Wake();
        await flushed.Task.WaitAsync(cancellationToken);
    }

    private void FailFlushes(Exception e)
    {
        foreach (var flush in _flushes)
        {
            flush.TrySetException(e);
        }

        _flushes.Clear();
    }

    /// <summary>Ends the enumeration with <paramref name="e"/> (as a <see cref="StreamsException"/>) and stops the exchanges.</summary>
    private void Fail(Exception e)
    {
        var error = e as StreamsException ?? new StreamsException(e is InvalidDataException ? StatusCode.DataLoss : StatusCode.Internal, $"Reader {ReaderId} of {_scope}/{_group} failed: {e.Message}", e);
        _events.Writer.TryComplete(error);
        lock (_lock)
        {
            _failure ??= error;
            FailFlushes(error);
        }

        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed already.
        }
    }

    private static async Task SwallowAsync(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception)
        {
            // Stopping: the failure was reported where it happened.
        }
    }
}
