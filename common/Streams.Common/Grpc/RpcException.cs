namespace Streams.Common.Grpc;

/// <summary>A call ended with a non-OK gRPC status.</summary>
public sealed class RpcException : Exception
{
    /// <summary>Creates the exception for a status.</summary>
    public RpcException(Status status)
        : base(status.ToString())
    {
        Status = status;
    }

    /// <summary>Creates the exception for a status code and a detail message.</summary>
    public RpcException(StatusCode code, string detail)
        : this(new Status(code, detail))
    {
    }

    /// <summary>Creates the exception for a status, keeping the exception that caused it.</summary>
    public RpcException(Status status, Exception innerException)
        : base(status.ToString(), innerException)
    {
        Status = status;
    }

    /// <summary>The call's status.</summary>
    public Status Status { get; }

    /// <summary>The call's status code.</summary>
    public StatusCode StatusCode => Status.Code;
}
