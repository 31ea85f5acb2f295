using Streams.Client.Serialization;

namespace Streams.Client.ReaderGroups;

/// <summary>
/// One reader group of a <see cref="StreamsClient"/>, named once: its checkpoints, resets, readers and management,
/// each the <see cref="StreamsClient"/> method of the same name for this group. Getting one calls nothing; the group
/// need not exist until a call needs it. Obtain it from <see cref="StreamsClient.GetReaderGroup"/>.
/// </summary>
public sealed class ReaderGroup
{
    private readonly StreamsClient _client;

    internal ReaderGroup(StreamsClient client, string scope, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(scope);
        ArgumentException.ThrowIfNullOrEmpty(name);
        _client = client;
        Scope = scope;
        Name = name;
    }

    /// <summary>The group's scope.</summary>
    public string Scope { get; }

    /// <summary>The group's name in its scope.</summary>
    public string Name { get; }

    /// <summary>Takes a checkpoint named <paramref name="name"/>; see <see cref="StreamsClient.CreateCheckpointAsync"/>.</summary>
    public Task<ReaderGroupCheckpoint> CheckpointAsync(string name, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        _client.CreateCheckpointAsync(Scope, Name, name, timeout, cancellationToken);

    /// <summary>Moves the group to <paramref name="cuts"/>; see <see cref="StreamsClient.ResetReaderGroupAsync(string, string, IReadOnlyList{StreamCut}, CancellationToken)"/>.</summary>
    public Task<ReaderGroupDescription> ResetAsync(IReadOnlyList<StreamCut> cuts, CancellationToken cancellationToken = default) =>
        _client.ResetReaderGroupAsync(Scope, Name, cuts, cancellationToken);

    /// <summary>Moves the group to a complete checkpoint; see <see cref="StreamsClient.ResetReaderGroupAsync(string, string, ReaderGroupCheckpoint, CancellationToken)"/>.</summary>
    public Task<ReaderGroupDescription> ResetAsync(ReaderGroupCheckpoint checkpoint, CancellationToken cancellationToken = default) =>
        _client.ResetReaderGroupAsync(Scope, Name, checkpoint, cancellationToken);

    /// <summary>Replaces the group's configuration and restarts it; see <see cref="StreamsClient.UpdateReaderGroupAsync"/>.</summary>
    public Task<ReaderGroupDescription> UpdateAsync(ReaderGroupConfig config, CancellationToken cancellationToken = default) =>
        _client.UpdateReaderGroupAsync(Scope, Name, config, cancellationToken);

    /// <summary>The group's configuration, readers, segments, backlog and checkpoints; see <see cref="StreamsClient.DescribeReaderGroupAsync"/>.</summary>
    public Task<ReaderGroupDescription> DescribeAsync(CancellationToken cancellationToken = default) =>
        _client.DescribeReaderGroupAsync(Scope, Name, cancellationToken);

    /// <summary>Deletes the group; returns false if it did not exist. See <see cref="StreamsClient.DeleteReaderGroupAsync"/>.</summary>
    public Task<bool> DeleteAsync(CancellationToken cancellationToken = default) =>
        _client.DeleteReaderGroupAsync(Scope, Name, cancellationToken);

    /// <summary>Declares a reader gone; see <see cref="StreamsClient.ReaderOfflineAsync"/>.</summary>
    public Task<bool> ReaderOfflineAsync(string readerId, CancellationToken cancellationToken = default) =>
        _client.ReaderOfflineAsync(Scope, Name, readerId, cancellationToken);

    /// <summary>Creates a reader of the group; see <see cref="StreamsClient.CreateReader{T}(string, string, string, IEventSerializer{T}, GroupReaderOptions?)"/>.</summary>
    public GroupReader<T> CreateReader<T>(string readerId, IEventSerializer<T> serializer, GroupReaderOptions? options = null) =>
        _client.CreateReader(Scope, Name, readerId, serializer, options);
}
