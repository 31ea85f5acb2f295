using Grpc.Core;
using Streams.Client.Internal;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Writing;

/// <summary>
/// Setting a segment writer up: connecting with retries, learning what the segment (and what it inherited) already
/// holds for this writer id, numbering the events that follow it, and handing a sealed segment's events back.
/// </summary>
internal sealed partial class SegmentWriter
{
    /// <summary>
    /// Whether the stream already holds the application's event <paramref name="sequence"/> at <paramref name="point"/>
    /// (lock held, after the first setup): in this segment, or in a predecessor that this one inherited from.
    /// </summary>
    private bool AlreadyStored(double point, long sequence)
    {
        if (sequence <= _firstSetupLast)
        {
            return true;
        }

        foreach (var range in _inherited)
        {
            if (point >= range.KeyStart && point < range.KeyEnd && sequence <= range.LastEventNumber)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Asks a sealed segment's writer for what it holds that is not durable: it sets up once more to learn the final
    /// last event number, completes what is at or below it, and hands back every other block, in order, with its bytes
    /// still taken from the budget. The caller completes those blocks. Called only for segments known to be sealed.
    /// </summary>
    public Task<List<EventBlock>> DrainAsync()
    {
        Task<List<EventBlock>> drained;
        lock (_lock)
        {
            _sealed = true;
            _setUp = false;
            drained = (_drain ??= new TaskCompletionSource<List<EventBlock>>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }

        _signal.Release();
        return drained;
    }

    /// <summary>The segment takes no more appends: stop sending and tell the stream writer, once.</summary>
    private void MarkSealed()
    {
        lock (_lock)
        {
            if (_sealed)
            {
                return;
            }

            _sealed = true;
            _setUp = false;
        }

        _setupReply?.TrySetException(new SegmentSealedSignal());
        _onSealed(this);
    }

    /// <summary>Connects and sets up until it works, or fails everything pending once the reconnect timeout passes.</summary>
    private async Task SetupWithRetryAsync()
    {
        try
        {
            await WithRetryAsync(() => SetupAsync(final: false));
        }
        catch (SegmentSealedSignal)
        {
            // MarkSealed told the stream writer; the drain it asks for sets up again.
        }
        catch (StreamsException e) when (e.StatusCode == StatusCode.NotFound)
        {
            Fail(e, fatal: true);
        }
        catch (StreamsException e)
        {
            Fail(e, fatal: false);
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
            // Closing.
        }
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> until it works, with back-off, for at most the reconnect timeout; then throws a
    /// StreamsException (UNAVAILABLE). NOT_FOUND, INVALID_ARGUMENT (a refused setup) and the seal signal end it at once.
    /// </summary>
    private async Task WithRetryAsync(Func<Task> attempt)
    {
        var deadline = DateTime.UtcNow + _context.ReconnectTimeout;
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            _stop.Token.ThrowIfCancellationRequested();
            try
            {
                await attempt();
                return;
            }
            catch (EndpointWatch.MovedException)
            {
                // The controller names another store now: go there without a back-off.
                delay = TimeSpan.FromMilliseconds(50);
            }
            catch (Exception e) when (e is not SegmentSealedSignal && !(e is StreamsException { StatusCode: StatusCode.NotFound or StatusCode.InvalidArgument }) && !_stop.IsCancellationRequested)
            {
                if (DateTime.UtcNow >= deadline)
                {
                    throw new StreamsException(StatusCode.Unavailable, $"Could not reach the segment store for {_segment} within {_context.ReconnectTimeout}: {e.Message}", e);
                }

                await Task.Delay(delay, _stop.Token);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>
    /// Sets the writer up and re-sends what is in flight. <paramref name="final"/>: only learn the last event number
    /// of a sealed segment (nothing is re-sent). Throws <see cref="SegmentSealedSignal"/> when the store answers that
    /// the segment is sealed (unless final).
    /// </summary>
    private async Task<AppendSetup> SetupAsync(bool final)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var endpoint = await _context.Controller.GetEndpointAsync(_segment, timeout.Token);
        // While the store does not answer, the controller is asked whether the segment moved: if it did, the wait ends
        // and the writer goes to the new owner at once (a frozen store holds no one up for its whole session).
        using var watch = EndpointWatch.Start(_context.Controller, _segment, endpoint, timeout.Token);
        SegmentStoreConnection connection;
        long requestId;
        AppendSetup setup;
        try
        {
            connection = await _context.Pool.GetAsync(endpoint, watch.Token);
            var reply = new TaskCompletionSource<AppendSetup>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_lock)
            {
                _connection?.Unregister(_requestId);
                _connection = connection;
                _requestId = requestId = connection.NextRequestId();
                _setupReply = reply;
            }

            connection.Register(requestId, this);
            await connection.SendSetupAsync(requestId, _writerId, _segment, watch.Token);
            setup = await reply.Task.WaitAsync(watch.Token);
        }
        catch (OperationCanceledException) when (watch.HasMoved)
        {
            throw new EndpointWatch.MovedException();
        }

        var lastDurable = setup.LastEventNumber;
        List<EventBlock> acknowledged = [];
        List<EventBlock> resend;
        lock (_lock)
        {
            if (!_numbered)
            {
                _inherited = [.. setup.Inherited];
                acknowledged.AddRange(Renumber(lastDurable));
            }

            while (_inflight.First is { } first && first.Value.LastEventNumber <= lastDurable)
            {
                _inflight.RemoveFirst();
                acknowledged.Add(first.Value);
            }

            resend = final || setup.Sealed ? [] : [.. _inflight];
        }

        foreach (var block in acknowledged)
        {
            Complete(block, null);
        }

        if (final)
        {
            return setup;
        }

        if (setup.Sealed)
        {
            MarkSealed();
            throw new SegmentSealedSignal();
        }

        foreach (var block in resend)
        {
            await connection.SendBlockAsync(HeaderOf(requestId, block), block.Data, timeout.Token);
        }

        lock (_lock)
        {
            if (_requestId == requestId && !connection.IsClosed && !_sealed)
            {
                _setUp = true;
            }
        }

        return setup;
    }

    /// <summary>
    /// The end of a sealed segment's writer (on the send loop): learns the final last event number, completes what is
    /// at or below it, and hands the rest to the stream writer. Nothing is appended here any more.
    /// </summary>
    private async Task DrainCoreAsync(TaskCompletionSource<List<EventBlock>> drain)
    {
        try
        {
            await WithRetryAsync(() => SetupAsync(final: true));
        }
        catch (Exception e)
        {
            var error = e is OperationCanceledException ? new ObjectDisposedException("The writer was closed.") : e;
            Fail(error, fatal: true);
            lock (_lock)
            {
                _moved = true;
            }

            drain.TrySetException(error);
            return;
        }

        List<EventBlock> rest;
        lock (_lock)
        {
            _moved = true;
            rest = [.. _inflight, .. _ready];
            if (_open is { EventCount: > 0 } open)
            {
                rest.Add(open);
            }

            _open = null;
            _inflight.Clear();
            _ready.Clear();
            if (_connection is { } connection)
            {
                connection.Unregister(_requestId);
            }
        }

        drain.TrySetResult(rest);
    }

    /// <summary>
    /// After the first setup (lock held; nothing was sent yet): the writer's own numbers move up to follow
    /// <paramref name="lastDurable"/>, and the application's events the stream already holds are cut from their
    /// blocks. Returns the blocks left with nothing to send: they complete at once.
    /// </summary>
    private List<EventBlock> Renumber(long lastDurable)
    {
        _numbered = true;
        _firstSetupLast = lastDurable;
        var first = _ready.Count > 0 ? _ready.Peek() : _open is { EventCount: > 0 } open ? open : null;
        var done = new List<EventBlock>();
        if (first is null || first[0].Sequence < 0)
        {
            // Numbered by the writer from 0: shift every pending number past the segment's record.
            var shift = Math.Max(0, lastDurable + 1 - (first is null ? _nextEventNumber : first.LastEventNumber - first.EventCount + 1));
            _nextEventNumber += shift;
            foreach (var block in _ready)
            {
                block.LastEventNumber += shift;
            }

            if (_open is not null)
            {
                _open.LastEventNumber += shift;
            }

            return done;
        }

        var kept = new List<EventBlock>(_ready.Count);
        foreach (var block in _ready)
        {
            (TrimDuplicates(block) ? kept : done).Add(block);
        }

        _ready.Clear();
        kept.ForEach(_ready.Enqueue);
        if (_open is { EventCount: > 0 } last && !TrimDuplicates(last))
        {
            done.Add(last);
            _open = null;
        }

        return done;
    }

    /// <summary>Cuts the application's events the stream already holds from a block (lock held); false if none is left.</summary>
    private bool TrimDuplicates(EventBlock block)
    {
        var dropped = block.RemoveWhere(e => AlreadyStored(e.Point, e.Sequence));
        _context.Budget.Release(dropped);
        return block.EventCount > 0;
    }

    /// <summary>The store said the segment is sealed: the setup in progress ends, and the stream writer takes over.</summary>
    private sealed class SegmentSealedSignal() : Exception("The segment is sealed.");
}
