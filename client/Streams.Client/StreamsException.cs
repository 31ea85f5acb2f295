using Grpc.Core;

namespace Streams.Client;

/// <summary>A request to the store failed. <see cref="StatusCode"/> says how (the gRPC status code).</summary>
public class StreamsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StreamsException(StatusCode statusCode, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
    }

    /// <summary>The gRPC status code of the failure.</summary>
    public StatusCode StatusCode { get; }

    internal static StreamsException From(RpcException e) => new(e.StatusCode, e.Status.Detail, e);
}

/// <summary>The stream is sealed: it accepts no more events.</summary>
public sealed class StreamSealedException : StreamsException
{
    /// <summary>Creates the exception.</summary>
    public StreamSealedException(string message)
        : base(StatusCode.FailedPrecondition, message)
    {
    }
}
