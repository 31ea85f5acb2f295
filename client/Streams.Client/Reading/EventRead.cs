namespace Streams.Client.Reading;

/// <summary>Where an event is: its segment, the offset of its frame, and the offset of the next event.</summary>
/// <param name="Segment">Qualified segment name.</param>
/// <param name="Offset">Offset of the event's frame in the segment.</param>
/// <param name="NextOffset">Offset of the following event: where to resume after this one.</param>
public readonly record struct EventPosition(string Segment, long Offset, long NextOffset);

/// <summary>An event and its position.</summary>
/// <param name="Value">The deserialized event.</param>
/// <param name="Position">Where it is stored.</param>
/// <param name="RoutingKey">The routing key, if the writer stored it (EventWriterOptions.StoreRoutingKeys).</param>
public readonly record struct EventRead<T>(T Value, EventPosition Position, string? RoutingKey = null);
