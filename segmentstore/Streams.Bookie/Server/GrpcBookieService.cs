using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Streams.Bookie.Storage;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Server;

/// <summary>streams.bookie.v1.Bookie on the gRPC carrier: the same operations as the raw carrier, for any language's gRPC stack.</summary>
public sealed class GrpcBookieService(BookieStore store) : Contracts.Bookie.Bookie.BookieBase
{
    private readonly BookieReplies _replies = new(store);

    public override async Task<AddEntryReply> AddEntry(AddEntryRequest request, ServerCallContext context) => new()
    {
        RequestId = request.RequestId,
        LedgerId = request.LedgerId,
        EntryId = request.EntryId,
        Status = await store.AddAsync(request.LedgerId, request.EntryId, request.LastAddConfirmed, request.Crc32C, request.Recovery, new ReadOnlySequence<byte>(request.Payload.Memory)),
    };

    public override async Task<ReadEntryReply> ReadEntry(ReadEntryRequest request, ServerCallContext context)
    {
        using var read = await store.ReadAsync(request.LedgerId, request.EntryId, context.CancellationToken);
        return new ReadEntryReply
        {
            RequestId = request.RequestId,
            LedgerId = request.LedgerId,
            EntryId = request.EntryId,
            Status = read.Status,
            LastAddConfirmed = read.LastAddConfirmed,
            Crc32C = read.Crc,
            Payload = ByteString.CopyFrom(read.Payload.Span),
            Message = read.Message ?? string.Empty,
        };
    }

    public override Task<ReadLacReply> ReadLac(ReadLacRequest request, ServerCallContext context) => Task.FromResult(_replies.ReadLac(request));

    public override Task<FenceReply> Fence(FenceRequest request, ServerCallContext context) => _replies.FenceAsync(request);

    public override Task<DeleteLedgerReply> DeleteLedger(DeleteLedgerRequest request, ServerCallContext context) => _replies.DeleteAsync(request);
}
