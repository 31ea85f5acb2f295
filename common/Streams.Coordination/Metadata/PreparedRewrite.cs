namespace Streams.Coordination.Metadata;

/// <summary>
/// A compacted copy of a <see cref="MetadataJournal"/>, fsynced at <paramref name="Path"/>, holding the state up to
/// journal byte <paramref name="From"/>; the records after it are added when the copy is put in place.
/// </summary>
internal sealed record PreparedRewrite(string Path, long From);
