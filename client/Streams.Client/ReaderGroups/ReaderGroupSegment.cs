namespace Streams.Client.ReaderGroups;

/// <summary>One segment of a reader group as the controller sees it.</summary>
/// <param name="Segment">Qualified segment name.</param>
/// <param name="SegmentId">The segment's id ((epoch &lt;&lt; 32) | number).</param>
/// <param name="State">Whether it waits, is free, is held, or is done.</param>
/// <param name="Owner">The reader holding it; null unless <see cref="ReaderGroupSegmentState.Assigned"/>.</param>
/// <param name="CommittedOffset">Where the group resumes in it: the offset after the last committed event.</param>
/// <param name="UnreadBytes">What the group still has to read of it.</param>
public sealed record ReaderGroupSegment(string Segment, long SegmentId, ReaderGroupSegmentState State, string? Owner, long CommittedOffset, long UnreadBytes);
