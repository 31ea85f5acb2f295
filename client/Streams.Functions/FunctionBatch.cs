using System.Buffers;
using Streams.Client.Reading;
using Streams.Client.Serialization;

namespace Streams.Functions;

/// <summary>
/// One micro-batch: events of one segment, in order, and the outputs a handler writes for them. Not thread-safe: a
/// handler writes its outputs from one flow at a time.
/// </summary>
public sealed class FunctionBatch<T>
{
    private readonly SegmentOutputs _outputs;
    private readonly Dictionary<(string Stream, long Offset), int> _perCause = [];
    private readonly List<Task> _written = [];

    internal FunctionBatch(string segment, IReadOnlyList<EventRead<T>> events, int attempt, SegmentOutputs outputs)
    {
        Segment = segment;
        Events = events;
        Attempt = attempt;
        _outputs = outputs;
    }

    /// <summary>The input segment (qualified name) every event of the batch comes from.</summary>
    public string Segment { get; }

    /// <summary>The events, in the order written.</summary>
    public IReadOnlyList<EventRead<T>> Events { get; }

    /// <summary>1 for the first attempt, more for a retry.</summary>
    public int Attempt { get; }

    /// <summary>
    /// A writer to <paramref name="stream"/> ("scope/stream") whose events are stored once however often this batch is
    /// handled (see <see cref="FunctionOutput{TOut}.WriteAsync"/>).
    /// </summary>
    public FunctionOutput<TOut> Output<TOut>(string stream, IEventSerializer<TOut> serializer) => new(WriteAsync, stream, serializer);

    /// <summary>Everything written through the outputs, to await before the batch is committed.</summary>
    internal Task WhenWrittenAsync() => Task.WhenAll(_written);

    private async Task WriteAsync(string stream, EventPosition cause, string? key, byte[] payload, CancellationToken cancellationToken)
    {
        if (cause.Segment != Segment || cause.Offset < 0)
        {
            throw new ArgumentException($"An output is written for an event of this batch (segment {Segment}); {cause.Segment}@{cause.Offset} is not one.", nameof(cause));
        }

        var perCause = (stream, cause.Offset);
        var index = _perCause.GetValueOrDefault(perCause);
        if (index >= SegmentOutputs.OutputsPerEvent)
        {
            throw new InvalidOperationException($"At most {SegmentOutputs.OutputsPerEvent} outputs per input event and output stream.");
        }

        _perCause[perCause] = index + 1;
        _written.Add(await _outputs.WriteAsync(stream, (cause.Offset * SegmentOutputs.OutputsPerEvent) + index, key, payload, cancellationToken));
    }
}

/// <summary>
/// A batch's writer to one output stream. Each output is numbered by the input event it is written for (its offset)
/// and its place among that event's outputs, under a writer id derived from the group, the input segment and the
/// output stream: when a batch is handled again (a retry, a crash, a segment moved to another instance), the same
/// outputs get the same numbers and the segment store keeps the first copy only. So write a given event's outputs in
/// the same order each time, and the events' outputs in the order of the events.
/// </summary>
public sealed class FunctionOutput<TOut>
{
    private readonly Func<string, EventPosition, string?, byte[], CancellationToken, Task> _write;
    private readonly string _stream;
    private readonly IEventSerializer<TOut> _serializer;

    internal FunctionOutput(Func<string, EventPosition, string?, byte[], CancellationToken, Task> write, string stream, IEventSerializer<TOut> serializer)
    {
        _write = write;
        _stream = stream;
        _serializer = serializer;
    }

    /// <summary>
    /// Writes <paramref name="value"/> (routed by <paramref name="routingKey"/>) as an output of input event
    /// <paramref name="cause"/>. Completes when it is handed to the writer; the batch is committed only once it is durable.
    /// </summary>
    public Task WriteAsync<TIn>(EventRead<TIn> cause, string? routingKey, TOut value, CancellationToken cancellationToken = default)
    {
        var buffer = new ArrayBufferWriter<byte>();
        _serializer.Serialize(value, buffer);
        return _write(_stream, cause.Position, routingKey, buffer.WrittenSpan.ToArray(), cancellationToken);
    }
}
