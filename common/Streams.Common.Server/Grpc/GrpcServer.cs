using System.Globalization;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Streams.Common.Grpc;
using Streams.Common.Wire;

namespace Streams.Common.Server.Grpc;

internal delegate ValueTask<TResponse> UnaryHandler<TRequest, TResponse>(TRequest request, ServerCallContext context);

internal delegate Task ServerStreamingHandler<TRequest, TResponse>(TRequest request, ServerResponseStream<TResponse> responses, ServerCallContext context);

internal delegate Task DuplexHandler<TRequest, TResponse>(ServerRequestStream<TRequest> requests, ServerResponseStream<TResponse> responses, ServerCallContext context);

/// <summary>
/// The gRPC server: routes HTTP/2 requests by path to registered handlers and speaks the gRPC protocol
/// around them (PROTOCOL-HTTP2.md): length-prefixed messages, grpc-timeout deadlines, and the status in
/// trailers, or in the headers of a trailers-only response when the call fails before any message.
/// A handler reports failure by throwing <see cref="RpcException"/>; a malformed request message becomes
/// INVALID_ARGUMENT, any other exception INTERNAL. Nothing a client sends can take the server down.
/// </summary>
internal sealed class GrpcServer
{
    private readonly Dictionary<string, Func<HttpContext, ServerCallContext, Task>> _methods = new(StringComparer.Ordinal);
    private readonly GrpcServerOptions _options;
    private readonly ILogger _logger;

    public GrpcServer(GrpcServerOptions options, ILogger<GrpcServer> logger)
    {
        _options = options;
        _logger = logger;
    }

    public IEnumerable<string> Methods => _methods.Keys;

    /// <summary>Cancelled when the server begins to shut down: long-lived calls end with UNAVAILABLE so clients go elsewhere.</summary>
    public CancellationToken StoppingToken { get; set; }

    public void AddUnary<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryHandler<TRequest, TResponse> handler) =>
        _methods.Add(method.FullName, async (http, context) =>
        {
            var request = await ReadSingleRequestAsync(http, method, context.CancellationToken);
            var response = await handler(request, context);
            try
            {
                // Headers first, so the status that follows goes in trailers, after the message.
                await http.Response.StartAsync(context.CancellationToken);
                var responses = new ServerResponseStream<TResponse>(http.Response, method.ResponseMarshaller, _options.MaxSendMessageSize);
                responses.Write(response);
            }
            finally
            {
                (response as IDisposable)?.Dispose();
            }
        });

    public void AddServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingHandler<TRequest, TResponse> handler) =>
        _methods.Add(method.FullName, async (http, context) =>
        {
            var request = await ReadSingleRequestAsync(http, method, context.CancellationToken);
            await http.Response.StartAsync(context.CancellationToken);
            await handler(request, new ServerResponseStream<TResponse>(http.Response, method.ResponseMarshaller, _options.MaxSendMessageSize), context);
        });

    public void AddDuplex<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexHandler<TRequest, TResponse> handler) =>
        _methods.Add(method.FullName, async (http, context) =>
        {
            var reader = new FramedMessageReader(http.Request.BodyReader, FrameFormat.Grpc, _options.MaxReceiveMessageSize);
            // Headers go out at once: clients may wait for them before they start writing.
            await http.Response.StartAsync(context.CancellationToken);
            await handler(
                new ServerRequestStream<TRequest>(reader, method.RequestMarshaller),
                new ServerResponseStream<TResponse>(http.Response, method.ResponseMarshaller, _options.MaxSendMessageSize),
                context);
        });

    /// <summary>Handles one HTTP request addressed to the gRPC endpoint.</summary>
    public async Task HandleAsync(HttpContext http)
    {
        var request = http.Request;
        if (!HttpMethods.IsPost(request.Method))
        {
            http.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }

        if (request.ContentType is null || !request.ContentType.StartsWith(GrpcProtocol.ContentType, StringComparison.OrdinalIgnoreCase))
        {
            http.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            await http.Response.WriteAsync($"This endpoint speaks gRPC: content-type must be {GrpcProtocol.ContentType}.\n");
            return;
        }

        if (!HttpProtocol.IsHttp2(request.Protocol))
        {
            http.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            http.Response.Headers.Upgrade = "h2c";
            return;
        }

        http.Response.ContentType = GrpcProtocol.ContentType;
        http.Response.Headers[GrpcProtocol.AcceptEncodingHeader] = "identity";
        var path = request.Path.Value ?? string.Empty;

        if (!_methods.TryGetValue(path, out var method))
        {
            WriteStatus(http, new Status(StatusCode.Unimplemented, $"Method {path} is not implemented by this server."));
            return;
        }

        var encoding = request.Headers[GrpcProtocol.EncodingHeader].ToString();
        if (encoding.Length > 0 && encoding != "identity")
        {
            WriteStatus(http, new Status(StatusCode.Unimplemented, $"Message encoding '{encoding}' is not supported; use identity."));
            return;
        }

        DateTime? deadline = null;
        using var deadlineCts = new CancellationTokenSource();
        var timeoutHeader = request.Headers[GrpcProtocol.TimeoutHeader].ToString();
        if (timeoutHeader.Length > 0)
        {
            if (!GrpcProtocol.TryParseTimeout(timeoutHeader, out var timeout))
            {
                WriteStatus(http, new Status(StatusCode.InvalidArgument, $"Malformed grpc-timeout header '{timeoutHeader}'."));
                return;
            }

            deadline = DateTime.UtcNow + timeout;
            deadlineCts.CancelAfter(timeout);
        }

        using var callCts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, deadlineCts.Token, StoppingToken);
        var context = new ServerCallContext(http, path, deadline, callCts.Token);
        Status status;
        try
        {
            await method(http, context);
            status = Status.Ok;
        }
        catch (RpcException e)
        {
            status = e.Status;
        }
        catch (Exception e) when (deadlineCts.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            status = new Status(StatusCode.DeadlineExceeded, "The call's deadline expired.");
        }
        catch (Exception e) when (StoppingToken.IsCancellationRequested && !http.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            status = new Status(StatusCode.Unavailable, "The server is shutting down; retry.");
        }
        catch (Exception e) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away (RST_STREAM or a dropped connection): there is nobody to answer.
            _logger.LogDebug(e, "Call {Method} from {Peer} was cancelled by the client.", path, context.Peer);
            return;
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException)
        {
            status = new Status(StatusCode.InvalidArgument, $"Malformed request message: {e.Message}");
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Call {Method} from {Peer} failed.", path, context.Peer);
            status = new Status(StatusCode.Internal, $"Internal error ({e.GetType().Name}): {e.Message}");
        }

        try
        {
            WriteStatus(http, status);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or OperationCanceledException)
        {
            _logger.LogDebug(e, "Could not send the status of {Method} to {Peer}.", path, context.Peer);
        }
    }

    private async Task<TRequest> ReadSingleRequestAsync<TRequest, TResponse>(HttpContext http, Method<TRequest, TResponse> method, CancellationToken cancellationToken)
    {
        var reader = new FramedMessageReader(http.Request.BodyReader, FrameFormat.Grpc, _options.MaxReceiveMessageSize);
        if (!await reader.MoveNextAsync(cancellationToken))
        {
            throw new RpcException(StatusCode.Internal, "The request ended without a message.");
        }

        var request = method.RequestMarshaller.Read(reader.Current);
        reader.Release();
        return request;
    }

    /// <summary>Sends the status: in trailers, or as a trailers-only response if nothing was sent yet.</summary>
    private static void WriteStatus(HttpContext http, Status status)
    {
        var code = ((int)status.Code).ToString(CultureInfo.InvariantCulture);
        var message = string.IsNullOrEmpty(status.Detail) ? null : GrpcProtocol.EncodeMessage(status.Detail);
        if (!http.Response.HasStarted)
        {
            http.Response.Headers[GrpcProtocol.StatusHeader] = code;
            if (message is not null)
            {
                http.Response.Headers[GrpcProtocol.MessageHeader] = message;
            }

            return;
        }

        var trailers = http.Features.Get<IHttpResponseTrailersFeature>()
            ?? throw new InvalidOperationException("The transport does not support response trailers.");
        trailers.Trailers[GrpcProtocol.StatusHeader] = code;
        if (message is not null)
        {
            trailers.Trailers[GrpcProtocol.MessageHeader] = message;
        }
    }
}
