using System.Text.Json;
using System.Text.Json.Serialization;
using Streams.Coordination.Metadata;

namespace Streams.Coordination.Cluster;

/// <summary>Settings every member must agree on, at <see cref="ClusterPaths.Config"/>, written once by the first controller.</summary>
public sealed record ClusterConfig(int ContainerCount);

/// <summary>
/// A live segment store, at /cluster/segmentstores/{id} (ephemeral): where clients and the controller reach it.
/// <paramref name="Incarnation"/> is new with every process start, so a store restarted on the same address is told
/// apart from the process before it (null from stores that predate it).
/// </summary>
public sealed record SegmentStoreRegistration(string Id, string Host, int DataPort, string GrpcUri, string? Incarnation = null);

/// <summary>Which segment store owns each container, at <see cref="ClusterPaths.Assignment"/>; written by the leading controller.</summary>
public sealed record ContainerAssignment(long Generation, IReadOnlyDictionary<int, string> Owners)
{
    public static ContainerAssignment Empty { get; } = new(0, new Dictionary<int, string>());

    public IEnumerable<int> OwnedBy(string store) => Owners.Where(o => o.Value == store).Select(o => o.Key);
}

/// <summary>
/// The containers a segment store serves now (recovered and running), at /cluster/serving/{id} (ephemeral), written by
/// the store whenever that set changes. The controller moves a container between live stores only once every earlier
/// move is served.
/// </summary>
public sealed record SegmentStoreServing(IReadOnlyList<int> Containers);

/// <summary>Where cluster coordination lives in the metadata store.</summary>
public static class ClusterPaths
{
    public const string Config = "/cluster/config";
    public const string SegmentStores = "/cluster/segmentstores";
    public const string Assignment = "/cluster/assignment";
    public const string ControllerLeader = "/cluster/controller-leader";
    public const string Serving = "/cluster/serving";

    public static string SegmentStore(string id) => SegmentStores + "/" + id;

    public static string ServingBy(string id) => Serving + "/" + id;

    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, typeof(T), ClusterJsonContext.Default);

    public static T Deserialize<T>(byte[] json) =>
        (T)(JsonSerializer.Deserialize(json, typeof(T), ClusterJsonContext.Default) ?? throw new InvalidDataException($"Empty {typeof(T).Name}."));

    /// <summary>The registrations of these segment stores, skipping any whose node has gone meanwhile.</summary>
    public static async Task<IReadOnlyList<SegmentStoreRegistration>> ReadSegmentStoresAsync(IMetadataStore store, IEnumerable<string> ids, CancellationToken cancellationToken)
    {
        var registrations = new List<SegmentStoreRegistration>();
        foreach (var id in ids)
        {
            if (await store.GetAsync(SegmentStore(id), cancellationToken) is { } registration)
            {
                registrations.Add(Deserialize<SegmentStoreRegistration>(registration.Data));
            }
        }

        return registrations;
    }
}

[JsonSerializable(typeof(ClusterConfig))]
[JsonSerializable(typeof(SegmentStoreRegistration))]
[JsonSerializable(typeof(ContainerAssignment))]
[JsonSerializable(typeof(SegmentStoreServing))]
internal sealed partial class ClusterJsonContext : JsonSerializerContext;
