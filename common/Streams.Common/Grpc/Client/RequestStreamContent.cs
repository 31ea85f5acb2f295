using System.Net;
using System.Net.Http.Headers;

namespace Streams.Common.Grpc.Client;

/// <summary>
/// Request body of a streaming call. HttpClient hands us the HTTP/2 request stream as soon as the request
/// headers are sent, before any response header arrives: a duplex call must be able to write first.
/// The body ends when <see cref="Complete"/> is called.
/// </summary>
internal sealed class RequestStreamContent : HttpContent
{
    private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public RequestStreamContent()
    {
        Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);
    }

    public Task<Stream> RequestStream => _stream.Task;

    public void Complete() => _done.TrySetResult();

    public void Fail(Exception error)
    {
        _stream.TrySetException(error);
        _done.TrySetException(error);
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        _stream.TrySetResult(stream);
        await _done.Task.WaitAsync(cancellationToken);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = -1;
        return false;
    }
}
