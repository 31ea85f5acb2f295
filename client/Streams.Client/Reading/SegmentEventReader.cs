using System.Buffers;
using System.Text;
using Grpc.Core;
using Streams.Client.Internal;
using Streams.Client.Serialization;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Reading;

/// <summary>
/// Reads one segment's events, in order, from an offset to its end or to a given end offset, and hands them on in
/// batches: the read loop both the whole-stream reader and the group reader use. It finds the segment's store through
/// the controller, retries a store that is unreachable for up to the reconnect timeout (asking the controller whether
/// the segment moved while it waits), follows the tail when asked to, and skips data truncated away.
/// </summary>
internal sealed class SegmentEventReader<T>
{
    private readonly IEventSerializer<T> _serializer;
    private readonly ControllerClient _controller;
    private readonly ConnectionPool _pool;
    private readonly TimeSpan _reconnectTimeout;
    private readonly int _readSize;
    private readonly int _waitMillis;

    /// <summary>A reader whose reads ask for <paramref name="readSize"/> bytes and, when <paramref name="follow"/> is set, wait that long at the tail for new events (null: stop at the tail).</summary>
    public SegmentEventReader(IEventSerializer<T> serializer, ControllerClient controller, ConnectionPool pool, TimeSpan reconnectTimeout, int readSize, TimeSpan? follow)
    {
        _serializer = serializer;
        _controller = controller;
        _pool = pool;
        _reconnectTimeout = reconnectTimeout;
        _readSize = readSize;
        _waitMillis = follow is { } wait ? (int)wait.TotalMilliseconds : -1;
    }

    /// <summary>How reading a segment stopped.</summary>
    /// <param name="ReachedEnd">True if the segment was read to its end (sealed) or to the end offset asked for.</param>
    /// <param name="Offset">The offset after the last event delivered: the end reached, when it was.</param>
    public readonly record struct Outcome(bool ReachedEnd, long Offset);

    /// <summary>
    /// Reads <paramref name="segment"/> from <paramref name="start"/> (null: its current end) to <paramref name="end"/>
    /// (-1: to the segment's end), giving each batch of parsed events to <paramref name="deliver"/> before reading on.
    /// Stops at the tail when not following, and when cancelled (neither counts as reaching the end). A segment known to
    /// be sealed (<paramref name="sealedSegment"/>) that no longer exists was truncated away whole and counts as read.
    /// Throws <see cref="StreamsException"/> if the segment is gone or its store stays unreachable, and
    /// <see cref="InvalidDataException"/> if its data is not a valid event sequence.
    /// </summary>
    public async Task<Outcome> ReadAsync(string segment, long? start, long end, bool sealedSegment, Func<List<EventRead<T>>, CancellationToken, ValueTask> deliver, CancellationToken cancellationToken)
    {
        var offset = start ?? -1;
        // Bytes of an event that spans reads wait here until the rest arrives.
        using var carry = new PooledBuffer(4096);
        var failingSince = (DateTime?)null;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (end >= 0 && offset >= end)
            {
                return new Outcome(true, offset);
            }

            SegmentReadReply reply;
            EndpointWatch? watch = null;
            try
            {
                var endpoint = await _controller.GetEndpointAsync(segment, cancellationToken);
                // Once reads failed, the store may be frozen or on its way out: while this attempt waits there, the
                // controller is asked whether the segment moved, and a move ends the wait at once (as for writers).
                watch = failingSince is null ? null : EndpointWatch.Start(_controller, segment, endpoint, cancellationToken);
                var token = watch?.Token ?? cancellationToken;
                var connection = await _pool.GetAsync(endpoint, token);
                if (offset < 0)
                {
                    offset = (await connection.GetInfoAsync(segment, token)).Length;
                }

                var from = offset + carry.WrittenCount;
                // Never past the end offset: the bytes there belong to whoever reads on from it.
                var size = end >= 0 ? (int)Math.Min(_readSize, Math.Max(1, end - from)) : _readSize;
                reply = await connection.ReadAsync(segment, from, size, Math.Max(0, _waitMillis), token);
                failingSince = null;
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                // Stopped (a revoke, a fence, the end): whatever the cancelled call threw (a gRPC call reports CANCELLED).
                break;
            }
            catch (Exception) when (watch is { HasMoved: true })
            {
                // Moved: read at the new owner now.
                continue;
            }
            catch (Exception e) when (sealedSegment && e is RpcException { StatusCode: StatusCode.NotFound } or StreamsException { StatusCode: StatusCode.NotFound })
            {
                // A sealed segment that no longer exists was truncated away whole: there is nothing left to read in it.
                return new Outcome(true, Math.Max(offset, 0));
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.InvalidArgument or StatusCode.DataLoss)
            {
                throw StreamsException.From(e);
            }
            catch (StreamsException e) when (e.StatusCode != StatusCode.Unavailable)
            {
                throw;
            }
            catch (Exception e)
            {
                failingSince ??= DateTime.UtcNow;
                if (DateTime.UtcNow - failingSince > _reconnectTimeout)
                {
                    throw new StreamsException(StatusCode.Unavailable, $"Reading {segment} failed for {_reconnectTimeout}: {e.Message}", e);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
                continue;
            }
            finally
            {
                watch?.Dispose();
            }

            using (reply)
            {
                switch (reply.Header.Status)
                {
                    case ReadStatus.Ok:
                        offset = await ParseAsync(segment, offset, carry, reply.Data, deliver, cancellationToken);
                        if (end >= 0 && offset + carry.WrittenCount > end)
                        {
                            throw new InvalidDataException($"Segment {segment} has no event boundary at its end offset {end}.");
                        }

                        break;
                    case ReadStatus.AtTail when _waitMillis < 0:
                        return new Outcome(false, offset);
                    case ReadStatus.EndOfSegment:
                        if (carry.WrittenCount > 0)
                        {
                            throw new InvalidDataException($"Segment {segment} ends inside an event at offset {offset}.");
                        }

                        return new Outcome(true, offset);
                    case ReadStatus.Truncated:
                        offset = reply.Header.StartOffset;
                        carry.Reset();
                        break;
                }
            }
        }

        return new Outcome(false, offset);
    }

    /// <summary>Parses whole events out of carried bytes plus new data; returns the offset of the first unparsed byte.</summary>
    private async ValueTask<long> ParseAsync(string segment, long offset, PooledBuffer carry, ReadOnlyMemory<byte> data, Func<List<EventRead<T>>, CancellationToken, ValueTask> deliver, CancellationToken cancellationToken)
    {
        ReadOnlyMemory<byte> input = data;
        if (carry.WrittenCount > 0)
        {
            carry.Write(data.Span);
            input = carry.WrittenMemory;
        }

        var batch = new List<EventRead<T>>();
        var buffer = new ReadOnlySequence<byte>(input);
        var consumed = 0L;
        while (EventFraming.TryReadEvent(ref buffer, out var framed))
        {
            var start = offset + consumed;
            consumed += framed.FrameLength;
            var key = framed.HasKey ? Encoding.UTF8.GetString(framed.Key) : null;
            batch.Add(new EventRead<T>(_serializer.Deserialize(framed.Payload), new EventPosition(segment, start, offset + consumed), key));
        }

        // Keep the incomplete tail for the next read.
        var rest = input[(int)consumed..].ToArray();
        carry.Reset();
        carry.Write(rest);
        if (batch.Count > 0)
        {
            await deliver(batch, cancellationToken);
        }

        return offset + consumed;
    }
}
