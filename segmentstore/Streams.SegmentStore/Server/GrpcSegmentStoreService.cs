using System.Threading.Channels;
using Grpc.Core;
using Streams.Common.Contracts;
using Streams.Common.Server.Framing;
using Streams.Common.Server.Grpc;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Streams.Contracts.SegmentStore;

namespace Streams.SegmentStore.Server;

/// <summary>
/// streams.segmentstore.v1.SegmentStore on the gRPC carrier. Append and Read, the data path, are served with their
/// own marshallers (<see cref="DataPathMethodProvider"/>: block data copied once into pooled memory, read replies
/// written straight from cached frames); the other rpcs are the generated ones.
/// <para>
/// Memory. Reads on one HTTP/2 connection share a reply budget (SegmentStore:ReplyBudgetPerConnection), held by each
/// answer until its call completes; an Append call's queued replies have a budget of the same size, and the call reads
/// no further request while it is spent. A client that stops reading holds at most these budgets.
/// </para>
/// </summary>
[CustomMarshalled("Append", "Read")]
public sealed class GrpcSegmentStoreService(SegmentRequests requests) : Contracts.SegmentStore.SegmentStore.SegmentStoreBase
{
    /// <summary>How long a finished Append call waits for the answers to blocks it already sent.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Where a connection's read budget is kept, among its connection items.</summary>
    private static readonly object ReadBudgetKey = new();

    /// <summary>Replies queued while one is being written go out in one flush.</summary>
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    public override Task<SegmentInfo> GetSegmentInfo(SegmentRequest request, ServerCallContext context) =>
        Task.FromResult(requests.GetInfo(request));

    public override async Task<SegmentInfo> CreateSegment(CreateSegmentRequest request, ServerCallContext context) =>
        await requests.CreateAsync(request, context.CancellationToken);

    public override async Task<SegmentInfo> SealSegment(SegmentRequest request, ServerCallContext context) =>
        await requests.SealAsync(request, context.CancellationToken);

    public override async Task<SegmentInfo> TruncateSegment(TruncateSegmentRequest request, ServerCallContext context) =>
        await requests.TruncateAsync(request, context.CancellationToken);

    public override async Task<DeleteSegmentReply> DeleteSegment(SegmentRequest request, ServerCallContext context) =>
        await requests.DeleteAsync(request, context.CancellationToken);

    public override async Task<WriterRecords> GetWriterRecords(SegmentRequest request, ServerCallContext context) =>
        await requests.GetWriterRecordsAsync(request, context.CancellationToken);

    public override async Task<SegmentInfo> InheritWriterRecords(InheritWriterRecordsRequest request, ServerCallContext context) =>
        await requests.InheritWriterRecordsAsync(request, context.CancellationToken);

    public override async Task<MergeSegmentsReply> MergeSegments(MergeSegmentsRequest request, ServerCallContext context) =>
        await requests.MergeAsync(request, context.CancellationToken);

    /// <summary>Read: the reply holds cached frames until it is written, then releases them.</summary>
    public async Task<ReadReplyFrame> ReadAsync(ReadSegmentRequest request, ServerCallContext context)
    {
        var http = context.GetHttpContext();
        var budget = ReadBudgetOf(http);
        var (result, cost) = await requests.ReadAsync(request, budget, context.CancellationToken);
        var reply = new ReadReplyFrame(request.RequestId, result);
        http.Response.RegisterForDispose(reply);
        http.Response.RegisterForDispose(new Held(budget, cost));
        return reply;
    }

    /// <summary>Append: setups and blocks in, acknowledgements and rejections out, in one session per call.</summary>
    public async Task AppendAsync(IAsyncStreamReader<AppendRequestFrame> requestStream, IServerStreamWriter<AppendReply> responseStream, ServerCallContext context)
    {
        // Multi-reader only so that the sender can see how many replies wait (single-reader channels cannot count).
        var replies = Channel.CreateUnbounded<(AppendReply Reply, long Cost)>(new UnboundedChannelOptions { SingleReader = false });
        var budget = NewBudget();
        using var session = new AppendSession(requests.Store, reply =>
        {
            var cost = budget.AddReply(reply.CalculateSize());
            if (!replies.Writer.TryWrite((reply, cost)))
            {
                budget.Release(cost);
            }
        });
        var sender = SendRepliesAsync(replies.Reader, responseStream, budget, context.CancellationToken);
        try
        {
            while (true)
            {
                await budget.WaitForRoomAsync(context.CancellationToken);
                if (!await requestStream.MoveNext(context.CancellationToken))
                {
                    break;
                }

                using var frame = requestStream.Current;
                if (frame.Message is null)
                {
                    await session.OnBlockAsync(frame.Header, frame.Data, context.CancellationToken);
                    continue;
                }

                switch (frame.Message.KindCase)
                {
                    case AppendRequest.KindOneofCase.Setup:
                        session.OnSetup(frame.Message.Setup);
                        break;
                    case AppendRequest.KindOneofCase.Block:
                        // A block encoded with other fields around it: parsed by Google.Protobuf, so its data was copied.
                        var block = frame.Message.Block;
                        await session.OnBlockAsync(
                            new Common.Wire.AppendBlockHeader(block.RequestId, block.LastEventNumber, block.EventCount, block.HasExpectedOffset ? block.ExpectedOffset : null, block.KeySample),
                            new System.Buffers.ReadOnlySequence<byte>(block.Data.Memory),
                            context.CancellationToken);
                        break;
                    default:
                        throw new RpcException(new Status(StatusCode.InvalidArgument, "An AppendRequest must hold a setup or a block."));
                }
            }

            // The client finished sending: answer everything it sent, then end the call.
            await session.DrainAsync(context.CancellationToken).WaitAsync(DrainTimeout, context.CancellationToken);
        }
        finally
        {
            replies.Writer.TryComplete();
            await sender;
        }
    }

    private static async Task SendRepliesAsync(
        ChannelReader<(AppendReply Reply, long Cost)> replies, IServerStreamWriter<AppendReply> responses, ReplyBudget budget, CancellationToken cancellationToken)
    {
        // What the replies written since the last flush hold: given back once, when the batch they ride in is flushed.
        long unflushed = 0;
        try
        {
            while (await replies.WaitToReadAsync(cancellationToken))
            {
                while (replies.TryRead(out var item))
                {
                    // Flush with the last reply that is ready; the ones before it ride in the same write.
                    responses.WriteOptions = replies.Count > 0 ? Buffered : null;
                    await responses.WriteAsync(item.Reply, cancellationToken);
                    unflushed += item.Cost;
                }

                budget.Release(unflushed);
                unflushed = 0;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The call ended (cancelled or the client went away); nobody is listening for replies.
            budget.Release(unflushed);
        }
    }

    /// <summary>The read budget of the HTTP/2 connection a call came on, created by its first read.</summary>
    private ReplyBudget ReadBudgetOf(HttpContext http)
    {
        var items = http.Features.Get<IConnectionItemsFeature>()?.Items;
        if (items is null)
        {
            // A host without connection items: bound each call on its own.
            return NewBudget();
        }

        lock (items)
        {
            if (items.TryGetValue(ReadBudgetKey, out var found) && found is ReplyBudget budget)
            {
                return budget;
            }

            budget = NewBudget();
            items[ReadBudgetKey] = budget;
            return budget;
        }
    }

    private ReplyBudget NewBudget() =>
        new(requests.Store.Options.ReplyBudgetPerConnection.Bytes, static change => SegmentStoreMetrics.ReplyBytes.Add(change));

    /// <summary>Gives a read's cost back to its connection's budget when the call's response is done.</summary>
    private sealed class Held(ReplyBudget budget, long bytes) : IDisposable
    {
        private long _bytes = bytes;

        public void Dispose() => budget.Release(Interlocked.Exchange(ref _bytes, 0));
    }
}
