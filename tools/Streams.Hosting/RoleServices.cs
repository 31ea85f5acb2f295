namespace Streams.Hosting;

/// <summary>The gRPC service names the roles serve, as the health service and reflection know them.</summary>
internal static class RoleServices
{
    public static readonly string Controller = Contracts.Controller.Controller.Descriptor.FullName;
    public static readonly string ReaderGroups = Contracts.Controller.ReaderGroups.Descriptor.FullName;
    public static readonly string Transactions = Contracts.Controller.Transactions.Descriptor.FullName;
    public static readonly string ExternalScaler = Contracts.ExternalScaler.ExternalScaler.Descriptor.FullName;
    public static readonly string SegmentStore = Contracts.SegmentStore.SegmentStore.Descriptor.FullName;
    public static readonly string Bookie = Contracts.Bookie.Bookie.Descriptor.FullName;
}
