using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Streams.Client;
using Streams.Client.Serialization;
using Streams.Client.Writing;

namespace Streams.Functions;

/// <summary>
/// The output writers of one input segment: one per output stream, under an id derived from the group, the segment and
/// the stream, writing events numbered by the function (<see cref="FunctionOutput{TOut}"/>). Outputs handed over since
/// the last commit are remembered, so a retry of the batch awaits them instead of writing them again; one that failed is
/// written again through a new writer with the same id (the old one cannot number backwards).
/// </summary>
internal sealed class SegmentOutputs(StreamsClient client, string groupScope, string group, string segment, ILogger logger) : IAsyncDisposable
{
    /// <summary>Outputs per input event and output stream: an output's number is the event's offset times this, plus its place.</summary>
    public const long OutputsPerEvent = 1024;

    private readonly Dictionary<string, Output> _writers = new(StringComparer.Ordinal);

    /// <summary>The id of the writer of <paramref name="inputSegment"/>'s outputs to <paramref name="stream"/>, the same in every instance.</summary>
    public static Guid WriterIdFor(string groupScope, string group, string inputSegment, string stream)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"streams-function\0{groupScope}/{group}\0{inputSegment}\0{stream}"));
        return new Guid(hash.AsSpan(0, 16));
    }

    /// <summary>Hands one output over; returns the task that completes when it is durable.</summary>
    public async Task<Task> WriteAsync(string stream, long number, string? key, byte[] payload, CancellationToken cancellationToken)
    {
        if (!_writers.TryGetValue(stream, out var output))
        {
            output = _writers[stream] = await CreateAsync(stream, cancellationToken);
        }

        if (output.Sent.TryGetValue(number, out var sent) && !sent.IsFaulted && !sent.IsCanceled)
        {
            return sent;
        }

        if (number <= output.Last)
        {
            // Sent before by this writer, and lost: a new writer with the same id may number from anywhere again (the
            // stream drops what it holds already).
            Retire(output);
            output = _writers[stream] = await CreateAsync(stream, cancellationToken);
        }

        var write = output.Writer.WriteEventAsync(key, payload, number, cancellationToken);
        output.Sent[number] = write;
        output.Last = number;
        return write;
    }

    /// <summary>The batch is committed: what it wrote is durable and needs no remembering.</summary>
    public void Committed()
    {
        foreach (var output in _writers.Values)
        {
            output.Sent.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var output in _writers.Values)
        {
            await output.Writer.DisposeAsync();
        }

        _writers.Clear();
    }

    private async Task<Output> CreateAsync(string stream, CancellationToken cancellationToken)
    {
        var slash = stream.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == stream.Length - 1)
        {
            throw new ArgumentException($"'{stream}' is not an output stream: give it as scope/stream.");
        }

        var writer = await client.CreateWriterAsync(stream[..slash], stream[(slash + 1)..], Serializers.Bytes,
            new EventWriterOptions { WriterId = WriterIdFor(groupScope, group, segment, stream), StoreRoutingKeys = true }, cancellationToken);
        return new Output(writer);
    }

    private void Retire(Output output)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                await output.Writer.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception e)
            {
                logger.LogDebug("An output writer of {Segment} retired after a failed write: {Error}", segment, e.Message);
            }
        });
    }

    private sealed class Output(EventStreamWriter<byte[]> writer)
    {
        public EventStreamWriter<byte[]> Writer { get; } = writer;

        public Dictionary<long, Task> Sent { get; } = [];

        public long Last { get; set; } = -1;
    }
}
