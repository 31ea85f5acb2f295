using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Streams.Common.Server.Hosting;

namespace Streams.Common.Server.Grpc;

/// <summary>
/// Every server call passes through here. It gives handlers a cancellation token that also fires when the server
/// begins to shut down, so long-lived calls (append sessions, tail reads, watches) end with UNAVAILABLE and clients go
/// elsewhere at once instead of waiting out the shutdown timeout; and it turns what a handler throws into a status:
/// an <see cref="RpcException"/> as it is, a malformed message INVALID_ARGUMENT, and anything else INTERNAL with a
/// correlation id. The exception itself goes to the server log under that id and never to the client: its message may
/// name internals (paths, hosts) that are none of the caller's business.
/// </summary>
internal sealed class ErrorInterceptor(IHostApplicationLifetime lifetime, ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        using var call = new StoppableCallContext(context, lifetime.ApplicationStopping);
        try
        {
            return await continuation(request, call);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Translate(e, call);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var call = new StoppableCallContext(context, lifetime.ApplicationStopping);
        try
        {
            await continuation(request, responseStream, call);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Translate(e, call);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var call = new StoppableCallContext(context, lifetime.ApplicationStopping);
        try
        {
            return await continuation(requestStream, call);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Translate(e, call);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        using var call = new StoppableCallContext(context, lifetime.ApplicationStopping);
        try
        {
            await continuation(requestStream, responseStream, call);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Translate(e, call);
        }
    }

    private Exception Translate(Exception e, StoppableCallContext call)
    {
        if (call.Inner.CancellationToken.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            // The client cancelled, went away or let its deadline pass: Grpc.AspNetCore reports that itself.
            return e;
        }

        if (call.Stopping.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            return new RpcException(new Status(StatusCode.Unavailable, "The server is shutting down; retry."));
        }

        if (e is InvalidProtocolBufferException or InvalidDataException)
        {
            return new RpcException(new Status(StatusCode.InvalidArgument, $"Malformed request: {e.Message}"));
        }

        return new RpcException(new Status(StatusCode.Internal, InternalErrors.Report(logger, e, $"Call {call.Method} from {call.Peer}")));
    }

    /// <summary>The call's context with a token that is also cancelled when the server begins to stop.</summary>
    private sealed class StoppableCallContext : ServerCallContext, IDisposable
    {
        private const string HttpContextKey = "__HttpContext";

        private readonly CancellationTokenSource _linked;

        public StoppableCallContext(ServerCallContext inner, CancellationToken stopping)
        {
            Inner = inner;
            Stopping = stopping;
            _linked = CancellationTokenSource.CreateLinkedTokenSource(inner.CancellationToken, stopping);
            // Where GetHttpContext() looks for the request of a wrapped context.
            inner.UserState[HttpContextKey] = inner.GetHttpContext();
        }

        public ServerCallContext Inner { get; }

        public CancellationToken Stopping { get; }

        protected override string MethodCore => Inner.Method;

        protected override string HostCore => Inner.Host;

        protected override string PeerCore => Inner.Peer;

        protected override DateTime DeadlineCore => Inner.Deadline;

        protected override global::Grpc.Core.Metadata RequestHeadersCore => Inner.RequestHeaders;

        protected override CancellationToken CancellationTokenCore => _linked.Token;

        protected override global::Grpc.Core.Metadata ResponseTrailersCore => Inner.ResponseTrailers;

        protected override Status StatusCore
        {
            get => Inner.Status;
            set => Inner.Status = value;
        }

        protected override WriteOptions? WriteOptionsCore
        {
            get => Inner.WriteOptions;
            set => Inner.WriteOptions = value;
        }

        protected override AuthContext AuthContextCore => Inner.AuthContext;

        protected override IDictionary<object, object> UserStateCore => Inner.UserState;

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
            throw new NotSupportedException("Context propagation is not used by this server.");

        protected override Task WriteResponseHeadersAsyncCore(global::Grpc.Core.Metadata responseHeaders) => Inner.WriteResponseHeadersAsync(responseHeaders);

        public void Dispose() => _linked.Dispose();
    }
}
