using Streams.Client.Internal;

namespace Streams.Client.Writing;

/// <summary>What the segment writers of one event writer share.</summary>
internal sealed record WriterContext(ControllerClient Controller, ConnectionPool Pool, ByteBudget Budget, TimeSpan ReconnectTimeout);
