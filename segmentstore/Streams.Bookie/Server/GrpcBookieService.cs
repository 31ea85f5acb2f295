using System.Buffers;
using Google.Protobuf;
using Streams.Bookie.Storage;
using Streams.Common.Grpc;
using Streams.Common.Server.Grpc;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Server;

/// <summary>streams.bookie.v1.Bookie on the gRPC carrier: the same operations, for any language's gRPC stack.</summary>
internal sealed class GrpcBookieService(BookieStore store)
{
    public const string ServiceName = "streams.bookie.v1.Bookie";

    public static readonly Method<AddEntryRequest, AddEntryReply> AddEntry = Unary<AddEntryRequest, AddEntryReply>("AddEntry");
    public static readonly Method<ReadEntryRequest, ReadEntryReply> ReadEntry = Unary<ReadEntryRequest, ReadEntryReply>("ReadEntry");
    public static readonly Method<ReadLacRequest, ReadLacReply> ReadLac = Unary<ReadLacRequest, ReadLacReply>("ReadLac");
    public static readonly Method<FenceRequest, FenceReply> Fence = Unary<FenceRequest, FenceReply>("Fence");
    public static readonly Method<DeleteLedgerRequest, DeleteLedgerReply> DeleteLedger = Unary<DeleteLedgerRequest, DeleteLedgerReply>("DeleteLedger");

    public void Register(GrpcServer server)
    {
        server.AddUnary(AddEntry, async (r, _) => new AddEntryReply
        {
            RequestId = r.RequestId, LedgerId = r.LedgerId, EntryId = r.EntryId,
            Status = await store.AddAsync(r.LedgerId, r.EntryId, r.LastAddConfirmed, r.Crc32C, r.Recovery, new ReadOnlySequence<byte>(r.Payload.Memory)),
        });
        server.AddUnary(ReadEntry, async (r, c) =>
        {
            using var read = await store.ReadAsync(r.LedgerId, r.EntryId, c.CancellationToken);
            return new ReadEntryReply
            {
                RequestId = r.RequestId, LedgerId = r.LedgerId, EntryId = r.EntryId, Status = read.Status, LastAddConfirmed = read.LastAddConfirmed,
                Crc32C = read.Crc, Payload = ByteString.CopyFrom(read.Payload.Span), Message = read.Message ?? string.Empty,
            };
        });
        server.AddUnary(ReadLac, (r, _) =>
        {
            var lac = store.ReadLac(r.LedgerId);
            return ValueTask.FromResult(new ReadLacReply
            {
                RequestId = r.RequestId, LedgerId = r.LedgerId, Status = lac.Status, LastAddConfirmed = lac.LastAddConfirmed, LastEntryId = lac.LastEntryId, Fenced = lac.Fenced,
            });
        });
        server.AddUnary(Fence, async (r, _) =>
        {
            var fenced = await store.FenceAsync(r.LedgerId);
            return new FenceReply { RequestId = r.RequestId, LedgerId = r.LedgerId, Status = fenced.Status, LastAddConfirmed = fenced.LastAddConfirmed, LastEntryId = fenced.LastEntryId };
        });
        server.AddUnary(DeleteLedger, async (r, _) => new DeleteLedgerReply { RequestId = r.RequestId, LedgerId = r.LedgerId, Status = await store.DeleteAsync(r.LedgerId) });
    }

    private static Method<TRequest, TResponse> Unary<TRequest, TResponse>(string name)
        where TRequest : IMessage<TRequest>, new()
        where TResponse : IMessage<TResponse>, new() =>
        new(MethodType.Unary, ServiceName, name, Marshallers.Protobuf<TRequest>(), Marshallers.Protobuf<TResponse>());
}
