using Grpc.Core;
using Streams.Contracts.Controller;
using Streams.Controller.ReaderGroups;

namespace Streams.Controller.Server;

/// <summary>streams.controller.v1.ReaderGroups: the generated service, answered by <see cref="ReaderGroupService"/>.</summary>
public sealed class GrpcReaderGroupsService(ReaderGroupService groups) : Contracts.Controller.ReaderGroups.ReaderGroupsBase
{
    /// <summary>How often a reader session's queued messages are sent when the reader itself says nothing.</summary>
    private static readonly TimeSpan SessionDrainInterval = TimeSpan.FromMilliseconds(100);

    private const int DefaultCheckpointTimeoutMs = 30_000;

    public override Task<CreateReaderGroupReply> CreateReaderGroup(CreateReaderGroupRequest request, ServerCallContext context) =>
        groups.CreateAsync(request, context.CancellationToken);

    public override Task<ReaderGroupInfo> DescribeReaderGroup(ReaderGroupRef request, ServerCallContext context) =>
        groups.DescribeAsync(request.Scope, request.Group, context.CancellationToken);

    public override async Task<ListReaderGroupsReply> ListReaderGroups(ScopeRequest request, ServerCallContext context)
    {
        var reply = new ListReaderGroupsReply();
        reply.Groups.AddRange(await groups.ListAsync(request.Scope, context.CancellationToken));
        return reply;
    }

    public override async Task<DeleteReaderGroupReply> DeleteReaderGroup(ReaderGroupRef request, ServerCallContext context) =>
        new() { Deleted = await groups.DeleteAsync(request.Scope, request.Group, context.CancellationToken) };

    public override async Task<ReaderOfflineReply> ReaderOffline(ReaderOfflineRequest request, ServerCallContext context) =>
        new() { Removed = await groups.ReaderOfflineAsync(request, context.CancellationToken) };

    public override async Task<ReaderExchangeReply> ReaderExchange(ReaderExchangeRequest request, ServerCallContext context)
    {
        var reply = new ReaderExchangeReply();
        reply.Messages.AddRange(await groups.ExchangeAsync(request.Scope, request.Group, request.ReaderId, request.Messages, context.CancellationToken, holdWhenIdle: true));
        return reply;
    }

    public override Task<ReaderGroupInfo> UpdateReaderGroup(UpdateReaderGroupRequest request, ServerCallContext context) =>
        groups.UpdateAsync(request, context.CancellationToken);

    public override Task<ReaderGroupInfo> ResetReaderGroup(ResetReaderGroupRequest request, ServerCallContext context) =>
        groups.ResetAsync(request.Scope, request.Group, request.Cuts, context.CancellationToken);

    public override Task<Checkpoint> CreateCheckpoint(CreateCheckpointRequest request, ServerCallContext context) =>
        groups.CreateCheckpointAsync(request.Scope, request.Group, request.Name,
            TimeSpan.FromMilliseconds(request.TimeoutMs is > 0 and <= 600_000 ? request.TimeoutMs : DefaultCheckpointTimeoutMs), context.CancellationToken);

    /// <summary>
    /// The bidirectional session: the first message is Join; every message is handled as in <see cref="ReaderExchange"/>,
    /// and what the coordinator queues for the reader is sent as it comes (checked every 100 ms).
    /// </summary>
    public override async Task ReaderSession(IAsyncStreamReader<ReaderMessage> requestStream, IServerStreamWriter<CoordinatorMessage> responseStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;
        if (!await requestStream.MoveNext(cancellation))
        {
            return;
        }

        if (requestStream.Current.KindCase != ReaderMessage.KindOneofCase.Join)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "A reader session starts with Join."));
        }

        var join = requestStream.Current.Join;
        using var writeLock = new SemaphoreSlim(1, 1);
        async Task ExchangeAsync(IEnumerable<ReaderMessage> messages)
        {
            var replies = await groups.ExchangeAsync(join.Scope, join.Group, join.ReaderId, messages, cancellation);
            await writeLock.WaitAsync(cancellation);
            try
            {
                foreach (var reply in replies)
                {
                    await responseStream.WriteAsync(reply, cancellation);
                }
            }
            finally
            {
                writeLock.Release();
            }
        }

        await ExchangeAsync([requestStream.Current]);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var drain = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(SessionDrainInterval);
            while (await timer.WaitForNextTickAsync(stop.Token))
            {
                await ExchangeAsync([]);
            }
        }, CancellationToken.None);
        try
        {
            while (await requestStream.MoveNext(cancellation))
            {
                await ExchangeAsync([requestStream.Current]);
            }
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await drain;
            }
            catch (Exception)
            {
                // The session ended (closed or failed): its drain loop ends with it.
            }
        }
    }
}
