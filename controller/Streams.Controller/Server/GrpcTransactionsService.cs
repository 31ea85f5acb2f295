using Grpc.Core;
using Streams.Contracts.Controller;
using Streams.Controller.Transactions;

namespace Streams.Controller.Server;

/// <summary>The Transactions gRPC service (transactions.proto) over <see cref="TransactionService"/>.</summary>
public sealed class GrpcTransactionsService(TransactionService transactions) : Contracts.Controller.Transactions.TransactionsBase
{
    public override Task<BeginTransactionReply> BeginTransaction(BeginTransactionRequest request, ServerCallContext context) =>
        transactions.BeginAsync(request.Scope, request.Stream, request.LeaseMs, context.CancellationToken);

    public override Task<TransactionInfo> PingTransaction(PingTransactionRequest request, ServerCallContext context) =>
        transactions.PingAsync(Required(request.Transaction), request.LeaseMs, context.CancellationToken);

    public override Task<TransactionInfo> CommitTransaction(CommitTransactionRequest request, ServerCallContext context) =>
        transactions.CommitAsync(Required(request.Transaction), [.. request.SegmentIds], request.Wait, context.CancellationToken);

    public override Task<TransactionInfo> AbortTransaction(TransactionRef request, ServerCallContext context) =>
        transactions.AbortAsync(request, context.CancellationToken);

    public override Task<TransactionInfo> GetTransaction(TransactionRef request, ServerCallContext context) =>
        transactions.GetAsync(request, context.CancellationToken);

    public override Task<TransactionList> ListTransactions(StreamRef request, ServerCallContext context) =>
        transactions.ListAsync(request.Scope, request.Stream, context.CancellationToken);

    private static TransactionRef Required(TransactionRef? reference) =>
        reference ?? throw new RpcException(new Status(StatusCode.InvalidArgument, "transaction must be set."));
}
