using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Streams.Client.Internal;
using Streams.Client.Serialization;
using Grpc.Core;
using Streams.Common.Wire;
using Streams.Contracts.SegmentStore;

namespace Streams.Client.Reading;

/// <summary>
/// Reads a whole stream: every segment, concurrently, with events of one segment (hence of one routing key) in
/// the order they were written. Events of different segments interleave.
/// </summary>
public sealed class EventStreamReader<T> : IAsyncDisposable
{
    private readonly IEventSerializer<T> _serializer;
    private readonly EventReaderOptions _options;
    private readonly ControllerClient _controller;
    private readonly ConnectionPool _pool;
    private readonly TimeSpan _reconnectTimeout;

    internal EventStreamReader(string scope, string stream, IEventSerializer<T> serializer, EventReaderOptions options, ControllerClient controller, ConnectionPool pool, TimeSpan reconnectTimeout)
    {
        options.Validate();
        Scope = scope;
        Stream = stream;
        _serializer = serializer;
        _options = options;
        _controller = controller;
        _pool = pool;
        _reconnectTimeout = reconnectTimeout;
    }

    /// <summary>The stream's scope.</summary>
    public string Scope { get; }

    /// <summary>The stream's name.</summary>
    public string Stream { get; }

    /// <summary>
    /// The stream's events. Ends when every segment is read to its current end (or, when following, when the
    /// sealed stream is fully read). Throws <see cref="StreamsException"/> if the stream disappears or the store
    /// stays unreachable, and <see cref="InvalidDataException"/> if stored data is not a valid event sequence.
    /// </summary>
    public async IAsyncEnumerable<EventRead<T>> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // The stream's segments, not its active ones: a sealed stream has no active segments, yet they hold its data.
        var segments = (await _controller.DescribeStreamAsync(Scope, Stream, cancellationToken)).ActiveSegments;
        var batches = Channel.CreateBounded<List<EventRead<T>>>(new BoundedChannelOptions(Math.Max(4, segments.Count * 2)) { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var readers = segments
            .Select(s => ReadSegmentAsync(s.Segment, StartOf(s.Segment), batches.Writer, stop.Token))
            .ToArray();
        var all = Task.WhenAll(readers).ContinueWith(t => batches.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        try
        {
            await foreach (var batch in batches.Reader.ReadAllAsync(cancellationToken))
            {
                foreach (var item in batch)
                {
                    yield return item;
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await all;
        }
    }

    /// <summary>Nothing to release: connections belong to the client.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>The configured start of a segment; null means "its current end".</summary>
    private long? StartOf(string segment) =>
        _options.StartOffsets is { } offsets && offsets.TryGetValue(segment, out var offset) ? offset
        : _options.StartAtTail ? null
        : 0;

    private async Task ReadSegmentAsync(string segment, long? start, ChannelWriter<List<EventRead<T>>> output, CancellationToken cancellationToken)
    {
        var offset = start ?? -1;
        // Bytes of an event that spans reads wait here until the rest arrives.
        using var carry = new PooledBuffer(4096);
        var waitMillis = _options.Follow ? (int)_options.TailWait.TotalMilliseconds : 0;
        var failingSince = (DateTime?)null;
        while (!cancellationToken.IsCancellationRequested)
        {
            SegmentReadReply reply;
            try
            {
                var endpoint = await _controller.GetEndpointAsync(segment, cancellationToken);
                var connection = await _pool.GetAsync(endpoint, cancellationToken);
                if (offset < 0)
                {
                    offset = (await connection.GetInfoAsync(segment, cancellationToken)).Length;
                }

                reply = await connection.ReadAsync(segment, offset + carry.WrittenCount, _options.ReadSize, waitMillis, cancellationToken);
                failingSince = null;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
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

            using (reply)
            {
                switch (reply.Header.Status)
                {
                    case ReadStatus.Ok:
                        offset = await ParseAsync(segment, offset, carry, reply.Data, output, cancellationToken);
                        break;
                    case ReadStatus.AtTail when !_options.Follow:
                        return;
                    case ReadStatus.EndOfSegment:
                        if (carry.WrittenCount > 0)
                        {
                            throw new InvalidDataException($"Segment {segment} ends inside an event at offset {offset}.");
                        }

                        return;
                    case ReadStatus.Truncated:
                        offset = reply.Header.StartOffset;
                        carry.Reset();
                        break;
                }
            }
        }
    }

    /// <summary>Parses whole events out of carried bytes plus new data; returns the offset of the first unparsed byte.</summary>
    private async ValueTask<long> ParseAsync(string segment, long offset, PooledBuffer carry, ReadOnlyMemory<byte> data, ChannelWriter<List<EventRead<T>>> output, CancellationToken cancellationToken)
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
            await output.WriteAsync(batch, cancellationToken);
        }

        return offset + consumed;
    }
}
