namespace Streams.Common.Grpc;

/// <summary>The outcome of a gRPC call: a code and a human-readable detail message.</summary>
/// <param name="Code">The status code.</param>
/// <param name="Detail">What went wrong, written for the user who has to fix it.</param>
public readonly record struct Status(StatusCode Code, string Detail)
{
    /// <summary>The success status.</summary>
    public static Status Ok => new(StatusCode.OK, string.Empty);

    /// <inheritdoc />
    public override string ToString() => string.IsNullOrEmpty(Detail) ? Code.ToString() : $"{Code}: {Detail}";
}
