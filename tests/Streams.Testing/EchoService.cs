using Google.Protobuf;
using Grpc.Core;
using Streams.Interop;

namespace Streams.Testing;

/// <summary>The Echo test service (tests/Protos/interop.proto); records what its handlers observed (cancellations), for assertions.</summary>
public sealed class EchoService : Echo.EchoBase
{
    private int _cancellations;
    private int _sleeps;

    /// <summary>Sleep handlers that started.</summary>
    public int Sleeps => Volatile.Read(ref _sleeps);

    /// <summary>Handler invocations that ended because the call was cancelled or its deadline passed.</summary>
    public int Cancellations => Volatile.Read(ref _cancellations);

    public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) =>
        Task.FromResult(new EchoReply { Text = request.Text, Payload = request.Payload });

    public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        for (var i = 0; i < request.Count; i++)
        {
            await responseStream.WriteAsync(new EchoReply { Text = request.Text, Index = i }, context.CancellationToken);
        }
    }

    public override async Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        var index = 0;
        while (await requestStream.MoveNext(context.CancellationToken))
        {
            await responseStream.WriteAsync(new EchoReply { Text = requestStream.Current.Text, Index = index++, Payload = requestStream.Current.Payload }, context.CancellationToken);
        }
    }

    public override Task<EchoReply> Fail(EchoRequest request, ServerCallContext context) =>
        request.Code == 0
            ? throw new InvalidOperationException("A handler bug: " + request.Text)
            : throw new RpcException(new Status((StatusCode)request.Code, request.Text));

    public override async Task<EchoReply> Sleep(EchoRequest request, ServerCallContext context)
    {
        Interlocked.Increment(ref _sleeps);
        try
        {
            await Task.Delay(request.DelayMs, context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _cancellations);
            throw;
        }

        return new EchoReply { Text = request.Text, Payload = ByteString.Empty };
    }
}
