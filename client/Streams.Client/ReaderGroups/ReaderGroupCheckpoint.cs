using Contract = Streams.Contracts.Controller;

namespace Streams.Client.ReaderGroups;

/// <summary>
/// A named position of a whole reader group: one stream cut per stream, made of the readers' committed positions
/// (and the controller's for segments no reader held), so resetting the group to it reads again what was not yet
/// processed when it was taken and nothing before.
/// </summary>
/// <param name="Name">Unique within the group.</param>
/// <param name="Complete">True once every reader acknowledged it: only then are <paramref name="Cuts"/> final.</param>
/// <param name="CreatedAt">When the controller started it.</param>
/// <param name="Cuts">One cut per stream of the group.</param>
public sealed record ReaderGroupCheckpoint(string Name, bool Complete, DateTimeOffset CreatedAt, IReadOnlyList<StreamCut> Cuts)
{
    internal static ReaderGroupCheckpoint From(Contract.Checkpoint checkpoint) => new(
        checkpoint.Name,
        checkpoint.Complete,
        DateTimeOffset.FromUnixTimeMilliseconds(checkpoint.CreatedAtUnixMs),
        [.. checkpoint.Cuts.Select(StreamCut.From)]);
}
