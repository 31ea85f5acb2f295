using Streams.Common.Wire;
using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;

namespace Streams.Common.Grpc.Client;

/// <summary>
/// One client call of any shape. Requests are written with <see cref="WriteAsync"/> (streaming requests)
/// or given up front (unary requests); responses are read with <see cref="MoveNextAsync"/>. The call's
/// status comes from the trailers (or from the headers of a trailers-only response); a non-OK status
/// surfaces as <see cref="RpcException"/> from the read that reaches it.
/// Not thread-safe: one reader and one writer at a time.
/// </summary>
internal sealed class GrpcCall<TRequest, TResponse> : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly Method<TRequest, TResponse> _method;
    private readonly CancellationTokenSource _cts;
    private readonly CancellationTokenSource? _deadlineCts;
    private readonly RequestStreamContent? _requestContent;
    private readonly Task<HttpResponseMessage> _responseTask;
    private PipeWriter? _requestWriter;
    private HttpResponseMessage? _response;
    private FramedMessageReader? _reader;
    private Status? _status;
    private int _disposed;

    internal GrpcCall(GrpcChannel channel, Method<TRequest, TResponse> method, CallOptions options, TRequest? request, bool hasRequest)
    {
        _channel = channel;
        _method = method;
        _deadlineCts = options.Deadline is null ? null : new CancellationTokenSource();
        _cts = _deadlineCts is null
            ? CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken)
            : CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken, _deadlineCts.Token);

        var message = new HttpRequestMessage(HttpMethod.Post, new Uri(channel.Address, method.FullName))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        message.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
        message.Headers.TryAddWithoutValidation(GrpcProtocol.AcceptEncodingHeader, "identity");
        message.Headers.TryAddWithoutValidation("user-agent", "streams-dotnet/1.0");
        if (options.Headers is { } headers)
        {
            foreach (var (name, value) in headers)
            {
                message.Headers.TryAddWithoutValidation(name, value);
            }
        }

        if (options.Deadline is { } deadline)
        {
            var timeout = deadline - DateTime.UtcNow;
            if (timeout <= TimeSpan.Zero)
            {
                _status = new Status(StatusCode.DeadlineExceeded, "The deadline expired before the call started.");
                _responseTask = Task.FromException<HttpResponseMessage>(new RpcException(_status.Value));
                message.Dispose();
                return;
            }

            message.Headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcProtocol.FormatTimeout(timeout));
            _deadlineCts!.CancelAfter(timeout);
        }

        if (hasRequest)
        {
            message.Content = new UnaryRequestContent(Serialize(request!));
        }
        else
        {
            _requestContent = new RequestStreamContent();
            message.Content = _requestContent;
        }

        _responseTask = channel.Invoker.SendAsync(message, _cts.Token);
    }

    /// <summary>The last response message read by <see cref="MoveNextAsync"/>.</summary>
    public TResponse Current { get; private set; } = default!;

    /// <summary>The call's status, once the response stream has ended.</summary>
    public Status? Status => _status;

    /// <summary>Sends one request message (streaming requests only).</summary>
    public async ValueTask WriteAsync(TRequest message, CancellationToken cancellationToken = default)
    {
        var writer = await GetRequestWriterAsync();
        var size = _method.RequestMarshaller.Size(message);
        if (size > _channel.Options.MaxSendMessageSize)
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"Message of {size} bytes exceeds the send limit of {_channel.Options.MaxSendMessageSize} bytes.");
        }

        try
        {
            GrpcProtocol.WriteMessageHeader(writer.GetSpan(GrpcProtocol.MessageHeaderSize), size);
            writer.Advance(GrpcProtocol.MessageHeaderSize);
            _method.RequestMarshaller.Write(message, writer);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token, cancellationToken);
            await writer.FlushAsync(linked.Token);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw TranslateException(e);
        }
    }

    /// <summary>Ends the request stream (streaming requests only).</summary>
    public async ValueTask CompleteRequestAsync()
    {
        if (_requestContent is null)
        {
            return;
        }

        if (_requestWriter is { } writer)
        {
            await writer.FlushAsync(_cts.Token);
        }

        _requestContent.Complete();
    }

    /// <summary>
    /// Reads the next response message. Returns false when the server ended the stream with OK;
    /// throws <see cref="RpcException"/> for any other status.
    /// </summary>
    public async ValueTask<bool> MoveNextAsync(CancellationToken cancellationToken = default)
    {
        if (_status is { } known)
        {
            return known.Code == StatusCode.OK ? false : throw new RpcException(known);
        }

        try
        {
            using var registration = cancellationToken.CanBeCanceled
                ? cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _cts)
                : default;
            var reader = _reader ?? await OpenResponseAsync();
            if (reader is null)
            {
                return FinishWithStatus();
            }

            if (await reader.MoveNextAsync(_cts.Token))
            {
                Current = _method.ResponseMarshaller.Read(reader.Current);
                return true;
            }

            return FinishWithStatus();
        }
        catch (Exception e) when (e is not RpcException)
        {
            var error = TranslateException(e);
            _status = error.Status;
            throw error;
        }
        catch (RpcException e)
        {
            _status ??= e.Status;
            throw;
        }
    }

    /// <summary>Reads the single response of a unary call and checks the status.</summary>
    internal async Task<TResponse> ReadUnaryResponseAsync()
    {
        if (!await MoveNextAsync())
        {
            throw new RpcException(StatusCode.Internal, "The server ended a unary call with OK but sent no response message.");
        }

        var response = Current;
        if (await MoveNextAsync())
        {
            throw new RpcException(StatusCode.Internal, "The server sent more than one response to a unary call.");
        }

        return response;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // A call disposed before its status arrived is cancelled: that resets the HTTP/2 stream.
        if (_status is null)
        {
            _status = new Status(StatusCode.Cancelled, "The call was disposed.");
            await _cts.CancelAsync();
        }

        _requestContent?.Complete();
        if (_requestWriter is { } writer)
        {
            await writer.CompleteAsync();
        }

        _reader?.Release();
        _response?.Dispose();
        try
        {
            await _responseTask;
        }
        catch (Exception)
        {
            // The outcome was already reported, or nobody asked for it.
        }

        _cts.Dispose();
        _deadlineCts?.Dispose();
    }

    private byte[] Serialize(TRequest request)
    {
        var size = _method.RequestMarshaller.Size(request);
        if (size > _channel.Options.MaxSendMessageSize)
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"Message of {size} bytes exceeds the send limit of {_channel.Options.MaxSendMessageSize} bytes.");
        }

        var buffer = new ArrayBufferWriter<byte>(size + GrpcProtocol.MessageHeaderSize);
        GrpcProtocol.WriteMessageHeader(buffer.GetSpan(GrpcProtocol.MessageHeaderSize), size);
        buffer.Advance(GrpcProtocol.MessageHeaderSize);
        _method.RequestMarshaller.Write(request, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    private async ValueTask<PipeWriter> GetRequestWriterAsync()
    {
        if (_requestWriter is { } existing)
        {
            return existing;
        }

        if (_requestContent is null)
        {
            throw new InvalidOperationException("This call's request was sent at its start.");
        }

        if (_status is { } status && status.Code != StatusCode.OK)
        {
            throw new RpcException(status);
        }

        // The stream is ready once the request headers went out; if the call fails first, report that.
        var ready = await Task.WhenAny(_requestContent.RequestStream, _responseTask);
        if (ready != _requestContent.RequestStream)
        {
            await OpenResponseAsync();
            throw new RpcException(_status ?? new Status(StatusCode.Internal, "The call ended before its request stream opened."));
        }

        var stream = await _requestContent.RequestStream;
        _requestWriter = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
        return _requestWriter;
    }

    /// <summary>Awaits the response headers and validates them; null when the response is trailers-only.</summary>
    private async ValueTask<FramedMessageReader?> OpenResponseAsync()
    {
        HttpResponseMessage response;
        try
        {
            response = await _responseTask;
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw TranslateException(e);
        }

        _response = response;
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new RpcException(GrpcProtocol.FromHttpStatus((int)response.StatusCode),
                $"The server answered HTTP {(int)response.StatusCode} instead of a gRPC response.");
        }

        // Trailers-only: the status is in the headers and there is no body.
        if (TryGetStatus(response.Headers, out var status))
        {
            _status = status;
            return null;
        }

        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (mediaType is null || !mediaType.StartsWith(GrpcProtocol.ContentType, StringComparison.OrdinalIgnoreCase))
        {
            throw new RpcException(StatusCode.Unknown, $"The server answered with content-type '{mediaType}' instead of {GrpcProtocol.ContentType}.");
        }

        var stream = await response.Content.ReadAsStreamAsync(_cts.Token);
        var pipe = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
        _reader = new FramedMessageReader(pipe, FrameFormat.Grpc, _channel.Options.MaxReceiveMessageSize);
        return _reader;
    }

    private bool FinishWithStatus()
    {
        if (_status is null)
        {
            if (_response is { } response && TryGetStatus(response.TrailingHeaders, out var status))
            {
                _status = status;
            }
            else
            {
                _status = new Status(StatusCode.Internal, "The server ended the response without a grpc-status trailer.");
            }
        }

        var final = _status.Value;
        return final.Code == StatusCode.OK ? false : throw new RpcException(final);
    }

    private static bool TryGetStatus(HttpHeaders headers, out Status status)
    {
        status = default;
        if (!headers.TryGetValues(GrpcProtocol.StatusHeader, out var values))
        {
            return false;
        }

        var code = GrpcProtocol.TryParseStatus(values.FirstOrDefault(), out var parsed) ? parsed : StatusCode.Unknown;
        var detail = headers.TryGetValues(GrpcProtocol.MessageHeader, out var messages)
            ? GrpcProtocol.DecodeMessage(messages.FirstOrDefault())
            : string.Empty;
        status = new Status(code, detail);
        return true;
    }

    private RpcException TranslateException(Exception e)
    {
        if (_deadlineCts?.IsCancellationRequested == true)
        {
            return new RpcException(new Status(StatusCode.DeadlineExceeded, "The call's deadline expired."), e);
        }

        if (_cts.IsCancellationRequested || e is OperationCanceledException)
        {
            return new RpcException(new Status(StatusCode.Cancelled, "The call was cancelled."), e);
        }

        if (e is HttpProtocolException protocol)
        {
            // RST_STREAM from the server: CANCEL (8) means it gave up on the call; others are transport failures.
            return protocol.ErrorCode == 8
                ? new RpcException(new Status(StatusCode.Cancelled, "The server cancelled the call."), e)
                : new RpcException(new Status(StatusCode.Internal, $"HTTP/2 stream error {protocol.ErrorCode}: {protocol.Message}"), e);
        }

        return new RpcException(new Status(StatusCode.Unavailable, $"{_channel.Address} is unreachable: {e.Message}"), e);
    }

    private sealed class UnaryRequestContent : ByteArrayContent
    {
        public UnaryRequestContent(byte[] body)
            : base(body)
        {
            Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);
        }
    }
}
