using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Server;

/// <summary>
/// One container's place in a segment store: it holds at most one copy of the container, claimed before the copy's
/// recovery starts and released only once the copy is fully disposed, so two copies of a container never run (or
/// recover, fencing each other) in one process. Every change goes through <see cref="Gate"/>; the claim is held for
/// moments, never across a recovery, so a stop can always interrupt one.
/// </summary>
internal sealed class ContainerSlot
{
    /// <summary>Serializes claims, stops and releases of this container.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>The copy, from its claim until it is disposed; written under <see cref="Gate"/>, read without it.</summary>
    public SegmentContainer? Container { get => Volatile.Read(ref _container); set => Volatile.Write(ref _container, value); }

    /// <summary>The ownership view the copy was started against.</summary>
    public long ClaimedAt { get; set; }

    /// <summary>
    /// When this store last lost the container (it failed, was stopped, or the session was lost), on the service's
    /// view sequence: only ownership read after that may start it again.
    /// </summary>
    public long LostAt { get; set; }

    /// <summary>Watches the running copy and restarts it when it fails; one per slot, so they stay bounded.</summary>
    public Task Supervisor { get; set; } = Task.CompletedTask;

    private SegmentContainer? _container;
}
