using Streams.Contracts.SegmentStore;

namespace Streams.Client.Internal;

/// <summary>Receives the append replies of one request id, on the connection's receive loop: do not block.</summary>
internal interface IAppendListener
{
    void OnSetup(AppendSetup setup);

    void OnAppended(DataAppended appended);

    void OnRejected(AppendRejected rejected);

    /// <summary>The connection is gone; nothing more will arrive for this request id.</summary>
    void OnDisconnected(Exception reason);
}
