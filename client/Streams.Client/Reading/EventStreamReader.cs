using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Streams.Client.Internal;
using Streams.Client.Serialization;
using Grpc.Core;
using Streams.Contracts.Controller;

namespace Streams.Client.Reading;

/// <summary>
/// Reads a whole stream: every segment of every epoch, concurrently, with events of one routing key in the order they
/// were written (a segment's successors start once all its predecessors are read to their end). Events of different
/// segments interleave.
/// </summary>
public sealed class EventStreamReader<T> : IAsyncDisposable
{
    private readonly EventReaderOptions _options;
    private readonly ControllerClient _controller;
    private readonly SegmentEventReader<T> _segments;

    internal EventStreamReader(string scope, string stream, IEventSerializer<T> serializer, EventReaderOptions options, ControllerClient controller, ConnectionPool pool, TimeSpan reconnectTimeout)
    {
        options.Validate();
        Scope = scope;
        Stream = stream;
        _options = options;
        _controller = controller;
        _segments = new SegmentEventReader<T>(serializer, controller, pool, reconnectTimeout, options.ReadSize, options.Follow ? options.TailWait : null);
    }

    /// <summary>The stream's scope.</summary>
    public string Scope { get; }

    /// <summary>The stream's name.</summary>
    public string Stream { get; }

    /// <summary>
    /// The stream's events, across every epoch: a segment's successors are read only once each of their predecessors
    /// is read to its end, so events of one routing key come in the order written, across scales too. Ends when every
    /// segment is read to its current end (or, when following, when the sealed stream is fully read). Throws
    /// <see cref="StreamsException"/> if the stream disappears or the store stays unreachable, and
    /// <see cref="InvalidDataException"/> if stored data is not a valid event sequence.
    /// </summary>
    public async IAsyncEnumerable<EventRead<T>> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var lineage = await StartAsync(cancellationToken);
        var first = lineage.Ready();
        var batches = Channel.CreateBounded<List<EventRead<T>>>(new BoundedChannelOptions(Math.Max(4, first.Count * 2)) { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = 0;
        var tasks = new List<Task>();

        void Start(SegmentLineage.Entry segment, long? start)
        {
            Interlocked.Increment(ref running);
            var task = Task.Run(async () =>
            {
                try
                {
                    if (await ReadSegmentAsync(segment, start, batches.Writer, stop.Token))
                    {
                        // Everything of this segment is in the channel: its successors may follow.
                        var successors = await SuccessorsAsync(segment.Name, stop.Token);
                        foreach (var next in lineage.Completed(segment.Id, successors))
                        {
                            Start(next, StartOf(next.Name) ?? 0);
                        }
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    // Stopped by the consumer.
                }
                catch (Exception e)
                {
                    batches.Writer.TryComplete(e);
                    await stop.CancelAsync();
                }
                finally
                {
                    if (Interlocked.Decrement(ref running) == 0)
                    {
                        batches.Writer.TryComplete();
                    }
                }
            });
            lock (tasks)
            {
                tasks.Add(task);
            }
        }

        if (first.Count == 0)
        {
            batches.Writer.TryComplete();
        }

        foreach (var segment in first)
        {
            Start(segment, StartOf(segment.Name));
        }

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
            Task[] all;
            lock (tasks)
            {
                all = [.. tasks];
            }

            await Task.WhenAll(all);
        }
    }

    /// <summary>
    /// The stream's segments and where reading starts: the segments whose predecessors are all done. Done are the
    /// ancestors of a segment named in StartOffsets (reading resumes after them) and, for StartAtTail, every sealed
    /// segment. A controller without ListSegments (no scaling) gives the stream's segments from DescribeStream.
    /// </summary>
    private async Task<SegmentLineage> StartAsync(CancellationToken cancellationToken)
    {
        SegmentList list;
        try
        {
            list = await _controller.ListSegmentsAsync(Scope, Stream, cancellationToken);
        }
        catch (StreamsException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            // The stream's segments, not its active ones: a sealed stream has no active segments, yet they hold its data.
            var info = await _controller.DescribeStreamAsync(Scope, Stream, cancellationToken);
            list = new SegmentList { State = info.State };
            list.Segments.AddRange(info.ActiveSegments.Select(s => new SegmentDescriptor { Segment = s }));
        }

        return new SegmentLineage(list.Segments, _options.StartOffsets?.Keys ?? [], _options.StartAtTail);
    }

    /// <summary>
    /// The successors of a segment read to its end. While the controller names none and the stream is not sealed, a
    /// scale is still completing (nothing can be in the successors yet): a follower asks again, others stop there.
    /// </summary>
    private async Task<IReadOnlyList<SuccessorSegment>> SuccessorsAsync(string segment, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            SuccessorsReply reply;
            try
            {
                reply = await _controller.GetSuccessorsAsync(segment, cancellationToken);
            }
            catch (StreamsException e) when (e.StatusCode == StatusCode.Unimplemented)
            {
                return [];
            }

            if (reply.Successors.Count > 0 || reply.State == StreamState.Sealed || !_options.Follow)
            {
                return reply.Successors;
            }

            await Task.Delay(delay, cancellationToken);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.TailWait.Ticks));
        }
    }

    /// <summary>Nothing to release: connections belong to the client.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>The configured start of a segment; null means "its current end".</summary>
    private long? StartOf(string segment) =>
        _options.StartOffsets is { } offsets && offsets.TryGetValue(segment, out var offset) ? offset
        : _options.StartAtTail ? null
        : 0;

    /// <summary>Reads a segment; true once it is read to its end (sealed), false when it stopped at its tail or was cancelled.</summary>
    private async Task<bool> ReadSegmentAsync(SegmentLineage.Entry entry, long? start, ChannelWriter<List<EventRead<T>>> output, CancellationToken cancellationToken) =>
        (await _segments.ReadAsync(entry.Name, start, -1, entry.Sealed, output.WriteAsync, cancellationToken)).ReachedEnd;
}
