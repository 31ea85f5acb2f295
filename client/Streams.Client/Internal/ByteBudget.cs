namespace Streams.Client.Internal;

/// <summary>
/// Bounds the bytes a writer holds (buffered and not yet acknowledged). Acquiring waits while the budget is
/// spent, which slows the application down to the pace of the store instead of growing memory without bound.
/// </summary>
internal sealed class ByteBudget
{
    private readonly object _lock = new();
    private readonly Queue<(long Bytes, TaskCompletionSource Waiter)> _waiters = new();
    private long _available;

    public ByteBudget(long capacity)
    {
        Capacity = capacity;
        _available = capacity;
    }

    public long Capacity { get; }

    public long InUse
    {
        get
        {
            lock (_lock)
            {
                return Capacity - _available;
            }
        }
    }

    /// <summary>Takes <paramref name="bytes"/> if they are free now and no one waits for space; otherwise takes nothing.</summary>
    public bool TryAcquire(long bytes)
    {
        bytes = Math.Min(bytes, Capacity);
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= bytes)
            {
                _available -= bytes;
                return true;
            }

            return false;
        }
    }

    public ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        bytes = Math.Min(bytes, Capacity);
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= bytes)
            {
                _available -= bytes;
                return ValueTask.CompletedTask;
            }

            // Cancelling completes the waiter itself, so a waiter either gets its bytes or is cancelled, never both.
            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Enqueue((bytes, waiter));
            if (cancellationToken.CanBeCanceled)
            {
                var registration = cancellationToken.Register(static w => ((TaskCompletionSource)w!).TrySetCanceled(), waiter);
                waiter.Task.ContinueWith(static (_, r) => ((CancellationTokenRegistration)r!).Dispose(), registration, TaskScheduler.Default);
            }

            return new ValueTask(waiter.Task);
        }
    }

    public void Release(long bytes)
    {
        List<TaskCompletionSource>? wake = null;
        lock (_lock)
        {
            _available = Math.Min(Capacity, _available + Math.Min(bytes, Capacity));
            while (_waiters.TryPeek(out var head) && (_available >= head.Bytes || head.Waiter.Task.IsCompleted))
            {
                _waiters.Dequeue();
                if (head.Waiter.Task.IsCompleted)
                {
                    continue;
                }

                _available -= head.Bytes;
                (wake ??= []).Add(head.Waiter);
            }
        }

        if (wake is not null)
        {
            foreach (var waiter in wake)
            {
                waiter.TrySetResult();
            }
        }
    }
}
