using System.IO.Pipelines;
using System.Net.Sockets;

namespace Streams.Common.Framing;

/// <summary>
/// Sending: many callers, one pipe, one flush for every frame that queued while the previous flush was under way.
/// <para>
/// Why. A writer of a stream with 1,000 segments has 1,000 send loops on one connection, each with blocks of one or two
/// events. With one flush per frame behind a semaphore, every frame cost a system call and a hand-off from one waiter
/// to the next on the thread pool, and the connection carried about 60,000 frames/s with the CPU half idle.
/// </para>
/// <para>
/// How. The first caller that finds the pipe free leads a round: it writes its own frame, then every frame queued so
/// far, flushes once, and completes the queued callers. If more queued meanwhile, it hands the lead to the oldest of
/// them, whose frame goes first in the next round; so no caller writes for others for longer than one round, and
/// frames leave in the order their callers queued. A queued caller whose token is cancelled before its frame is taken
/// is dropped from the queue, its frame never written. The pipe itself is held with <see cref="_writeLock"/> during a
/// round, so <see cref="DisposeAsync"/> completes it between rounds.
/// </para>
/// </summary>
public sealed partial class FramedClientConnection
{
    private readonly object _sendQueueLock = new();
    private readonly Queue<QueuedFrame> _sendQueue = new();
    private bool _sending;

    private async ValueTask SendAsync<TState>(TState state, FrameWriter<TState> write, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        QueuedFrame<TState>? queued = null;
        lock (_sendQueueLock)
        {
            if (_sending)
            {
                queued = new QueuedFrame<TState>(state, write);
                _sendQueue.Enqueue(queued);
            }
            else
            {
                _sending = true;
            }
        }

        if (queued is not null)
        {
            using var registration = cancellationToken.CanBeCanceled
                ? cancellationToken.Register(static frame => ((QueuedFrame)frame!).TryCancel(), queued)
                : default;
            if (!await queued.Outcome.Task.ConfigureAwait(false))
            {
                return; // written and flushed in another caller's round
            }
        }

        await RoundAsync(state, write, queued, cancellationToken);
    }

    /// <summary>Leads one round (this caller holds the lead): its own frame, then the queued ones, one flush; then hands the lead on.</summary>
    private async ValueTask RoundAsync<TState>(TState state, FrameWriter<TState> write, QueuedFrame? self, CancellationToken cancellationToken)
    {
        List<QueuedFrame>? batch = null;
        try
        {
            await _writeLock.WaitAsync(CancellationToken.None);
            try
            {
                if (_closedReason is { } reason)
                {
                    throw _protocol.Failure(FramedFailure.Closed, reason);
                }

                try
                {
                    if (self is null)
                    {
                        write(_output, state);
                    }
                    else
                    {
                        self.Write(_output);
                    }

                    batch = TakeQueued();
                    if (batch is not null)
                    {
                        foreach (var frame in batch)
                        {
                            frame.Write(_output);
                        }
                    }

                    // Other callers' frames are in this flush: only closing stops it, never this caller's token.
                    await _output.FlushAsync(batch is null ? cancellationToken : _closing.Token);
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
                {
                    Close(e);
                    throw _protocol.Failure(FramedFailure.SendFailed, e);
                }
            }
            finally
            {
                _writeLock.Release();
            }
        }
        catch (Exception e)
        {
            if (batch is not null)
            {
                foreach (var frame in batch)
                {
                    frame.Outcome.TrySetException(e);
                }
            }

            HandOver();
            throw;
        }

        if (batch is not null)
        {
            foreach (var frame in batch)
            {
                frame.Outcome.TrySetResult(false);
            }
        }

        HandOver();
    }

    /// <summary>The frames queued now that no cancellation took first, in order; null if none.</summary>
    private List<QueuedFrame>? TakeQueued()
    {
        List<QueuedFrame>? batch = null;
        lock (_sendQueueLock)
        {
            while (_sendQueue.TryDequeue(out var frame))
            {
                if (frame.TryTake())
                {
                    (batch ??= []).Add(frame);
                }
            }
        }

        return batch;
    }

    /// <summary>Gives the lead to the oldest queued frame, or frees the pipe if none is waiting.</summary>
    private void HandOver()
    {
        lock (_sendQueueLock)
        {
            while (_sendQueue.TryDequeue(out var next))
            {
                if (next.TryTake())
                {
                    // Its caller resumes on the thread pool (the outcome runs continuations asynchronously), not here.
                    next.Outcome.TrySetResult(true);
                    return;
                }
            }

            _sending = false;
        }
    }

    /// <summary>
    /// A frame waiting for a round. Its outcome is true when its caller takes the lead (the frame is not written yet),
    /// false once another round wrote and flushed it, or the round's failure.
    /// </summary>
    private abstract class QueuedFrame
    {
        private const int Queued = 0;
        private const int Taken = 1;
        private const int Cancelled = 2;

        private int _state;

        public TaskCompletionSource<bool> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public abstract void Write(PipeWriter output);

        /// <summary>Claims the frame for a round or for the lead; false if its caller gave up first.</summary>
        public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued;

        /// <summary>Drops the frame if no round took it yet; its caller sees the cancellation.</summary>
        public void TryCancel()
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Queued) == Queued)
            {
                Outcome.TrySetCanceled();
            }
        }
    }

    private sealed class QueuedFrame<TState>(TState state, FrameWriter<TState> write) : QueuedFrame
    {
        public override void Write(PipeWriter output) => write(output, state);
    }
}
