using System.Diagnostics;

namespace Streams.SegmentStore;

/// <summary>
/// The segment store's spans (activity source "Streams.SegmentStore"): container recovery, Tier 2 flushes (one per
/// chunk), reads (one per read request) and append sessions (one per session, never per block or event: the append
/// path carries hundreds of thousands of events a second). With no listener, starting a span costs one check and
/// returns null.
/// </summary>
public static class SegmentStoreTracing
{
    public const string SourceName = "Streams.SegmentStore";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>
    /// Starts a span that lasts as long as a session, without leaving it current: what the same connection or call does
    /// later (reads on a raw connection) is not nested under it.
    /// </summary>
    public static Activity? StartSession(string name)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var current = Activity.Current;
        var session = Source.StartActivity(name);
        Activity.Current = current;
        return session;
    }
}
