namespace Streams.Bookie.Server;

/// <summary>
/// What one connection may have in progress: requests, and the bytes they hold (add payloads until answered, read
/// payloads until their reply is in the socket's send buffer). The connection's read loop takes from it before it
/// starts a request and waits while it is spent, so a client that sends faster than the bookie answers, or never
/// reads its replies, stops being read (TCP flow control pushes back on it) instead of growing the bookie's memory.
/// <para>
/// A request is admitted while the budget is not spent yet, whatever its size, so a connection holds at most its
/// budget plus one request (one entry, at most MaxEntrySize). One waiter at a time: frames of a connection are
/// handled in order.
/// </para>
/// </summary>
internal sealed class InFlightBudget(long maxBytes, int maxRequests)
{
    private readonly Lock _lock = new();
    private long _bytes;
    private int _requests;
    private TaskCompletionSource? _freed;

    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    public int Requests
    {
        get
        {
            lock (_lock)
            {
                return _requests;
            }
        }
    }

    /// <summary>Takes one request of <paramref name="bytes"/>; completes at once unless the budget is spent.</summary>
    public ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (TryTakeLocked(bytes))
            {
                return ValueTask.CompletedTask;
            }
        }

        return WaitAsync(this, bytes, cancellationToken);

        static async ValueTask WaitAsync(InFlightBudget budget, long bytes, CancellationToken cancellationToken)
        {
            BookieMetrics.ConnectionThrottled.Add(1);
            while (true)
            {
                Task freed;
                lock (budget._lock)
                {
                    if (budget.TryTakeLocked(bytes))
                    {
                        return;
                    }

                    budget._freed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    freed = budget._freed.Task;
                }

                await freed.WaitAsync(cancellationToken);
            }
        }
    }

    /// <summary>Changes a request's bytes once it knows them (a read, after reading its entry).</summary>
    public void Adjust(long delta)
    {
        TaskCompletionSource? freed;
        lock (_lock)
        {
            _bytes += delta;
            freed = TakeWaiterLocked();
        }

        freed?.TrySetResult();
    }

    /// <summary>Gives back one request of <paramref name="bytes"/>.</summary>
    public void Release(long bytes)
    {
        TaskCompletionSource? freed;
        lock (_lock)
        {
            _bytes -= bytes;
            _requests--;
            freed = TakeWaiterLocked();
        }

        freed?.TrySetResult();
    }

    private bool TryTakeLocked(long bytes)
    {
        if (_bytes >= maxBytes || _requests >= maxRequests)
        {
            return false;
        }

        _bytes += bytes;
        _requests++;
        return true;
    }

    private TaskCompletionSource? TakeWaiterLocked()
    {
        if (_freed is null || _bytes >= maxBytes || _requests >= maxRequests)
        {
            return null;
        }

        var freed = _freed;
        _freed = null;
        return freed;
    }
}
