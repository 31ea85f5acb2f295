using Streams.Bookie.Storage;
using Streams.Contracts.Bookie;

namespace Streams.Bookie.Server;

/// <summary>
/// The requests that both carriers (raw framed and gRPC) answer with the same reply message: the one place those
/// replies are built. Adds and reads differ per carrier (how the payload travels), so they are not here.
/// </summary>
internal sealed class BookieReplies(BookieStore store)
{
    public ReadLacReply ReadLac(ReadLacRequest request)
    {
        var lac = store.ReadLac(request.LedgerId);
        return new ReadLacReply
        {
            RequestId = request.RequestId, LedgerId = request.LedgerId, Status = lac.Status,
            LastAddConfirmed = lac.LastAddConfirmed, LastEntryId = lac.LastEntryId, Fenced = lac.Fenced,
        };
    }

    public async Task<FenceReply> FenceAsync(FenceRequest request)
    {
        var fenced = await store.FenceAsync(request.LedgerId);
        return new FenceReply { RequestId = request.RequestId, LedgerId = request.LedgerId, Status = fenced.Status, LastAddConfirmed = fenced.LastAddConfirmed, LastEntryId = fenced.LastEntryId };
    }

    public async Task<DeleteLedgerReply> DeleteAsync(DeleteLedgerRequest request) =>
        new() { RequestId = request.RequestId, LedgerId = request.LedgerId, Status = await store.DeleteAsync(request.LedgerId) };
}
