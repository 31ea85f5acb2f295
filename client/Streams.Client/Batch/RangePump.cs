using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Grpc.Core;
using Streams.Client.Reading;

namespace Streams.Client.Batch;

/// <summary>
/// Reads one range in the background into a bounded buffer of parsed reads, so that several ranges can be read ahead
/// while the consumer takes them one after the other. Fails the consumer if the range's events do not follow each
/// other from its start to its end (the segment was truncated after the range was listed, or ends short of it).
/// </summary>
internal sealed class RangePump<T> : IAsyncDisposable
{
    private readonly Channel<List<EventRead<T>>> _reads;
    private readonly CancellationTokenSource _stop;
    private readonly Task _pumping;

    /// <summary>Starts reading <paramref name="range"/> at once.</summary>
    public RangePump(SegmentEventReader<T> reader, SegmentRange range, int bufferedReads, CancellationToken cancellationToken)
    {
        _reads = Channel.CreateBounded<List<EventRead<T>>>(new BoundedChannelOptions(bufferedReads) { SingleReader = true, SingleWriter = true });
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _pumping = Task.Run(() => PumpAsync(reader, range, _stop.Token), CancellationToken.None);
    }

    /// <summary>The range's events, in offset order.</summary>
    public async IAsyncEnumerable<EventRead<T>> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var batch in _reads.Reader.ReadAllAsync(cancellationToken))
        {
            foreach (var item in batch)
            {
                yield return item;
            }
        }
    }

    /// <summary>Stops reading and waits for the reader to let go.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _pumping;
        _stop.Dispose();
    }

    private async Task PumpAsync(SegmentEventReader<T> reader, SegmentRange range, CancellationToken cancellationToken)
    {
        var expected = range.StartOffset;
        try
        {
            // Not "sealed": a segment that disappears after it was listed is an error here, not an empty range.
            var outcome = await reader.ReadAsync(range.Segment, range.StartOffset, range.EndOffset, sealedSegment: false, async (batch, token) =>
            {
                foreach (var e in batch)
                {
                    if (e.Position.Offset != expected)
                    {
                        throw new StreamsException(StatusCode.DataLoss, $"Segment {range.Segment} was truncated at {e.Position.Offset} after its range was listed: the events from {expected} are gone.");
                    }

                    expected = e.Position.NextOffset;
                }

                await _reads.Writer.WriteAsync(batch, token);
            }, cancellationToken);
            if (!outcome.ReachedEnd)
            {
                // Stopped: the consumer sees its cancellation, not an end that looks complete.
                cancellationToken.ThrowIfCancellationRequested();
                throw new StreamsException(StatusCode.OutOfRange, $"Segment {range.Segment} ends at {outcome.Offset}, before its range's end {range.EndOffset}.");
            }

            _reads.Writer.TryComplete();
        }
        catch (Exception e)
        {
            _reads.Writer.TryComplete(e);
        }
    }
}
