using System.Threading.Channels;
using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

/// <summary>The session with the controller (exchanges, the coordinator's messages) and the read loop of each assigned segment.</summary>
public sealed partial class GroupReader<T>
{
    /// <summary>Joins, then exchanges at least every third of the heartbeat interval (sooner when woken) until stopped or failed.</summary>
    private async Task ExchangeLoopAsync()
    {
        var stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                TimeSpan period;
                bool joined;
                lock (_lock)
                {
                    period = _period;
                    joined = _joined;
                }

                if (joined)
                {
                    await _wake.WaitAsync(period, stop);
                    // Several wake-ups are served by one exchange.
                    while (_wake.Wait(0))
                    {
                    }
                }

                await ExchangeOnceAsync(stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    /// <summary>One exchange: the owed messages out (Join first when not joined), the controller's messages in.</summary>
    private async Task ExchangeOnceAsync(CancellationToken cancellationToken)
    {
        List<ReaderMessage> messages;
        List<(GroupAssignment Assignment, long Offset)> commits = [];
        List<TaskCompletionSource> flushes;
        bool joining;
        lock (_lock)
        {
            joining = !_joined;
            if (joining)
            {
                // A new session owes nothing of the old one's.
                _outbox.Clear();
                _checkpoints.Clear();
                messages = [new ReaderMessage { Join = new Join { Scope = _scope, Group = _group, ReaderId = ReaderId } }];
            }
            else
            {
                messages = [];
                foreach (var a in _assignments.Values)
                {
                    if (a.Committed > a.CommitSent)
                    {
                        commits.Add((a, a.Committed));
                        messages.Add(new ReaderMessage { Commit = new Commit { SessionEpoch = _sessionEpoch, OwnerEpoch = a.OwnerEpoch, Position = a.Position(a.Committed) } });
                    }
                }

                messages.AddRange(_outbox);
                _outbox.Clear();
                foreach (var name in _checkpoints)
                {
                    var ack = new CheckpointAck { SessionEpoch = _sessionEpoch, Name = name };
                    ack.Positions.AddRange(_assignments.Values.Select(a => a.Position(a.Committed)));
                    messages.Add(new ReaderMessage { CheckpointAck = ack });
                }

                _checkpoints.Clear();

                // Every exchange mentions each segment held, so the controller knows its Assign arrived (it repeats an
                // Assign a reader does not mention, in case the reply that carried it was lost) and sees fresh lag.
                var heartbeat = new Heartbeat { SessionEpoch = _sessionEpoch };
                heartbeat.ReadPositions.AddRange(_assignments.Values.Select(a => a.Position(a.Yielded)));
                messages.Add(new ReaderMessage { Heartbeat = heartbeat });
            }

            flushes = [.. _flushes];
            _flushes.Clear();
        }

        var reply = await ExchangeAsync(messages, cancellationToken);
        lock (_lock)
        {
            foreach (var (a, offset) in commits)
            {
                a.CommitSent = Math.Max(a.CommitSent, offset);
            }

            if (joining && !reply.Messages.Any(m => m.KindCase == CoordinatorMessage.KindOneofCase.Joined))
            {
                throw new StreamsException(StatusCode.Internal, $"The controller answered the Join of reader {ReaderId} to {_scope}/{_group} without Joined.");
            }

            foreach (var message in reply.Messages)
            {
                Handle(message);
            }
        }

        foreach (var flush in flushes)
        {
            flush.TrySetResult();
        }
    }

    /// <summary>Calls ReaderExchange, retrying a controller that is unavailable or slow for up to the reconnect timeout.</summary>
    private async Task<ReaderExchangeReply> ExchangeAsync(List<ReaderMessage> messages, CancellationToken cancellationToken)
    {
        var request = new ReaderExchangeRequest { Scope = _scope, Group = _group, ReaderId = ReaderId };
        request.Messages.AddRange(messages);
        var failingSince = (DateTime?)null;
        while (true)
        {
            try
            {
                return await _controller.CallGroupsAsync((c, o) => c.ReaderExchangeAsync(request, o), cancellationToken, method: "ReaderExchange");
            }
            catch (StreamsException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && !cancellationToken.IsCancellationRequested
                && DateTime.UtcNow - (failingSince ??= DateTime.UtcNow) < _reconnectTimeout)
            {
                await Task.Delay(RetryDelay, cancellationToken);
            }
        }
    }

    /// <summary>Acts on one message of the controller. Under the lock.</summary>
    private void Handle(CoordinatorMessage message)
    {
        switch (message.KindCase)
        {
            case CoordinatorMessage.KindOneofCase.Joined:
                _joined = true;
                _sessionEpoch = message.Joined.SessionEpoch;
                _period = (message.Joined.HeartbeatIntervalMs > 0 ? TimeSpan.FromMilliseconds(message.Joined.HeartbeatIntervalMs) : DefaultHeartbeat) / 3;
                break;
            case CoordinatorMessage.KindOneofCase.Assign:
                Start(message.Assign);
                break;
            case CoordinatorMessage.KindOneofCase.Revoke:
                if (_assignments.TryGetValue(message.Revoke.SegmentId, out var revoked) && revoked.OwnerEpoch == message.Revoke.OwnerEpoch)
                {
                    revoked.Revoked = true;
                    revoked.Cancel.Cancel();
                    Settle(revoked);
                }

                break;
            case CoordinatorMessage.KindOneofCase.Fenced when message.Fenced.SegmentId != 0:
                if (_assignments.TryGetValue(message.Fenced.SegmentId, out var fenced))
                {
                    Drop(fenced);
                }

                break;
            case CoordinatorMessage.KindOneofCase.Fenced:
                // The session is over and every segment with it: join again, and get segments anew.
                foreach (var a in _assignments.Values.ToList())
                {
                    Drop(a);
                }

                _outbox.Clear();
                _checkpoints.Clear();
                _joined = false;
                break;
            case CoordinatorMessage.KindOneofCase.Checkpoint:
                // Answered by the next exchange, which starts at once.
                if (!_checkpoints.Contains(message.Checkpoint.Name))
                {
                    _checkpoints.Add(message.Checkpoint.Name);
                }

                Wake();
                break;
            case CoordinatorMessage.KindOneofCase.EndOfGroup:
                // Every segment of the group is completed, so nothing is read any more: the enumeration drains what is buffered and ends.
                _events.Writer.TryComplete();
                break;
        }
    }

    /// <summary>Starts reading an assigned segment; an Assign repeated with the same owner epoch changes nothing. Under the lock.</summary>
    private void Start(Assign assign)
    {
        if (_assignments.TryGetValue(assign.SegmentId, out var existing))
        {
            if (existing.OwnerEpoch == assign.OwnerEpoch)
            {
                return;
            }

            Drop(existing);
        }

        var a = new GroupAssignment(assign);
        _assignments[a.SegmentId] = a;
        a.Reading = Task.Run(() => ReadSegmentAsync(a));
    }

    /// <summary>A segment's read loop: its events into the shared buffer until its end, a revoke or a fence.</summary>
    private async Task ReadSegmentAsync(GroupAssignment a)
    {
        try
        {
            var outcome = await _segments.ReadAsync(a.Segment, a.Start, a.End, sealedSegment: false, async (batch, token) =>
            {
                await _events.Writer.WriteAsync((a, batch), token);
                lock (_lock)
                {
                    a.Queued = batch[^1].Position.NextOffset;
                }
            }, a.Cancel.Token);
            lock (_lock)
            {
                a.ReadingDone = true;
                // Never past the end offset, even where a truncation moved the read beyond it.
                a.FinalOffset = !outcome.ReachedEnd ? null : a.End >= 0 ? Math.Min(outcome.Offset, a.End) : outcome.Offset;
                Settle(a);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException && a.Cancel.IsCancellationRequested)
        {
            lock (_lock)
            {
                a.ReadingDone = true;
                Settle(a);
            }
        }
        catch (ChannelClosedException)
        {
            // The group ended or the reader failed: nobody takes events any more.
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }
}
