namespace Streams.Common.Server.Framing;

/// <summary>
/// The bytes one client connection may hold in replies that are not yet written to its socket: read answers
/// (which pin cached frames) and small replies queued behind them. A client that stops reading its replies stops
/// getting new ones once the budget is spent, so it holds at most the budget, never more memory as it asks for more.
/// <para>
/// A request that fits waits for nothing (<see cref="TryAcquire"/>); one that does not waits in arrival order
/// (<see cref="AcquireAsync"/>). A single request larger than the whole budget is admitted once nothing else is
/// held, so it is delayed, never refused. Small replies that cannot wait (they are produced on a container's
/// thread) are counted with <see cref="Add"/> and may overshoot the budget; the connection's receive loop then waits
/// (<see cref="WaitForRoomAsync"/>) before taking more requests, so the overshoot is bounded by what was already
/// asked.
/// </para>
/// </summary>
public sealed class ReplyBudget
{
    /// <summary>
    /// What a queued reply holds besides its encoded size: its length prefix and its entry in the sender's queue
    /// (a few dozen bytes; counted so that a flood of empty replies is bounded too).
    /// </summary>
    public const int ReplyOverhead = 32;

    private readonly object _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly Action<long>? _changed;
    private long _held;

    /// <param name="limit">The bytes the connection may hold; at least 1.</param>
    /// <param name="changed">Told every change of <see cref="Held"/> (a difference), e.g. to feed a metric; called under the budget's lock, so it must be quick.</param>
    public ReplyBudget(long limit, Action<long>? changed = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        Limit = limit;
        _changed = changed;
    }

    /// <summary>The bytes the connection may hold.</summary>
    public long Limit { get; }

    /// <summary>The bytes held now: acquired or added and not yet released.</summary>
    public long Held
    {
        get
        {
            lock (_lock)
            {
                return _held;
            }
        }
    }

    /// <summary>Takes <paramref name="bytes"/> if they fit now and nobody waits before; false otherwise.</summary>
    public bool TryAcquire(long bytes)
    {
        lock (_lock)
        {
            if (_waiters.Count != 0 || !Fits(bytes))
            {
                return false;
            }

            _held += bytes;
            _changed?.Invoke(bytes);
        }

        return true;
    }

    /// <summary>Takes <paramref name="bytes"/>, waiting in arrival order until they fit. Throws when cancelled, holding nothing.</summary>
    public ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken) => WaitAsync(bytes, take: true, cancellationToken);

    /// <summary>Waits until the connection holds no more than its budget (nothing is taken).</summary>
    public ValueTask WaitForRoomAsync(CancellationToken cancellationToken) => WaitAsync(0, take: false, cancellationToken);

    /// <summary>Counts <paramref name="bytes"/> at once, over the budget if need be: for replies that cannot wait.</summary>
    public void Add(long bytes)
    {
        lock (_lock)
        {
            _held += bytes;
            _changed?.Invoke(bytes);
        }
    }

    /// <summary>
    /// Counts a queued protobuf reply of <paramref name="encodedSize"/> bytes at once (as <see cref="Add"/> does) and
    /// returns what it holds: its size and <see cref="ReplyOverhead"/>. Give that back with <see cref="Release"/>
    /// once the reply is written.
    /// </summary>
    public long AddReply(int encodedSize)
    {
        var cost = encodedSize + (long)ReplyOverhead;
        Add(cost);
        return cost;
    }

    /// <summary>Gives back bytes taken with <see cref="TryAcquire"/>, <see cref="AcquireAsync"/> or <see cref="Add"/>.</summary>
    public void Release(long bytes)
    {
        if (bytes == 0)
        {
            return;
        }

        List<Waiter>? wake;
        lock (_lock)
        {
            _held -= bytes;
            _changed?.Invoke(-bytes);
            wake = TakeAdmitted();
        }

        Wake(wake);
    }

    private bool Fits(long bytes) => _held == 0 || _held + bytes <= Limit;

    private ValueTask WaitAsync(long bytes, bool take, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && Fits(bytes))
            {
                if (take)
                {
                    _held += bytes;
                    _changed?.Invoke(bytes);
                }

                return ValueTask.CompletedTask;
            }

            cancellationToken.ThrowIfCancellationRequested();
            waiter = new Waiter(bytes, take);
            waiter.Node = _waiters.AddLast(waiter);
        }

        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.Register(static state =>
            {
                var (budget, waiter) = ((ReplyBudget, Waiter))state!;
                budget.Cancel(waiter);
            }, (this, waiter));
        }

        return new ValueTask(waiter.Completion.Task);
    }

    private void Cancel(Waiter waiter)
    {
        List<Waiter>? wake;
        lock (_lock)
        {
            if (waiter.Node?.List is null)
            {
                // Admitted meanwhile: the bytes were taken and are the caller's to release.
                return;
            }

            _waiters.Remove(waiter.Node);
            waiter.Node = null;
            // The ones behind it may fit now.
            wake = TakeAdmitted();
        }

        waiter.Completion.TrySetCanceled();
        Wake(wake);
    }

    /// <summary>Admits waiters from the head while they fit (lock held).</summary>
    private List<Waiter>? TakeAdmitted()
    {
        List<Waiter>? admitted = null;
        while (_waiters.First is { } head && Fits(head.Value.Bytes))
        {
            _waiters.RemoveFirst();
            head.Value.Node = null;
            if (head.Value.Take)
            {
                _held += head.Value.Bytes;
                _changed?.Invoke(head.Value.Bytes);
            }

            (admitted ??= []).Add(head.Value);
        }

        return admitted;
    }

    private static void Wake(List<Waiter>? admitted)
    {
        if (admitted is null)
        {
            return;
        }

        foreach (var waiter in admitted)
        {
            waiter.Registration.Dispose();
            waiter.Completion.TrySetResult();
        }
    }

    private sealed class Waiter(long bytes, bool take)
    {
        public long Bytes { get; } = bytes;

        public bool Take { get; } = take;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }

        public CancellationTokenRegistration Registration { get; set; }
    }
}
