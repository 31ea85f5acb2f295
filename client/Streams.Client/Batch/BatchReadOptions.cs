namespace Streams.Client.Batch;

/// <summary>Settings of batch reads (<see cref="BatchClient"/>).</summary>
public sealed record BatchReadOptions
{
    /// <summary>Bytes asked for per read; default 1 MiB, as the stream reader.</summary>
    public int ReadSize { get; init; } = 1024 * 1024;

    /// <summary>
    /// Ranges <see cref="BatchClient.ReadRangesAsync{T}"/> reads at once: the one being delivered and those read ahead
    /// of it; default 4. Memory is bounded by about Parallelism × <see cref="BufferedReads"/> × <see cref="ReadSize"/>.
    /// </summary>
    public int Parallelism { get; init; } = 4;

    /// <summary>Reads of one range parsed and waiting for the consumer, at most; default 4.</summary>
    public int BufferedReads { get; init; } = 4;

    internal void Validate()
    {
        if (ReadSize is < 1024 or > 16 * 1024 * 1024)
        {
            throw new ArgumentException($"ReadSize must be between 1 KiB and 16 MiB (is {ReadSize}).");
        }

        if (Parallelism is < 1 or > 256)
        {
            throw new ArgumentException($"Parallelism must be between 1 and 256 (is {Parallelism}).");
        }

        if (BufferedReads is < 1 or > 1024)
        {
            throw new ArgumentException($"BufferedReads must be between 1 and 1024 (is {BufferedReads}).");
        }
    }
}
