using Google.Protobuf;
using Streams.Common.Grpc;
using Streams.Common.Server.Grpc;
using Streams.Interop;

namespace Streams.Testing;

/// <summary>The Echo test service (tests/Protos/interop.proto): method descriptors and a server implementation.</summary>
public static class EchoApi
{
    public const string ServiceName = "streams.interop.v1.Echo";

    internal static readonly Method<EchoRequest, EchoReply> Unary = Create(MethodType.Unary, "Unary");
    internal static readonly Method<EchoRequest, EchoReply> ServerStream = Create(MethodType.ServerStreaming, "ServerStream");
    internal static readonly Method<EchoRequest, EchoReply> Bidi = Create(MethodType.DuplexStreaming, "Bidi");
    internal static readonly Method<EchoRequest, EchoReply> Fail = Create(MethodType.Unary, "Fail");
    internal static readonly Method<EchoRequest, EchoReply> Sleep = Create(MethodType.Unary, "Sleep");

    private static Method<EchoRequest, EchoReply> Create(MethodType type, string name) =>
        new(type, ServiceName, name, Marshallers.Protobuf<EchoRequest>(), Marshallers.Protobuf<EchoReply>());
}

/// <summary>Serves Echo and records what its handlers observed (cancellations), for assertions.</summary>
public sealed class EchoService
{
    private int _cancellations;
    private int _sleeps;

    /// <summary>Sleep handlers that started.</summary>
    public int Sleeps => Volatile.Read(ref _sleeps);

    /// <summary>Handler invocations that ended because the call was cancelled or its deadline passed.</summary>
    public int Cancellations => Volatile.Read(ref _cancellations);

    internal void Register(GrpcServer server)
    {
        server.AddUnary(EchoApi.Unary, (r, _) => ValueTask.FromResult(new EchoReply { Text = r.Text, Payload = r.Payload }));
        server.AddServerStreaming(EchoApi.ServerStream, async (r, responses, context) =>
        {
            for (var i = 0; i < r.Count; i++)
            {
                await responses.WriteAsync(new EchoReply { Text = r.Text, Index = i }, context.CancellationToken);
            }
        });
        server.AddDuplex(EchoApi.Bidi, async (requests, responses, context) =>
        {
            var index = 0;
            while (await requests.MoveNextAsync(context.CancellationToken))
            {
                await responses.WriteAsync(new EchoReply { Text = requests.Current.Text, Index = index++, Payload = requests.Current.Payload }, context.CancellationToken);
            }
        });
        server.AddUnary(EchoApi.Fail, (r, _) => throw new RpcException((StatusCode)r.Code, r.Text));
        server.AddUnary(EchoApi.Sleep, async (r, context) =>
        {
            Interlocked.Increment(ref _sleeps);
            try
            {
                await Task.Delay(r.DelayMs, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _cancellations);
                throw;
            }

            return new EchoReply { Text = r.Text, Payload = ByteString.Empty };
        });
    }
}
