using Streams.Contracts.Controller;

namespace Streams.Client.Tests.Fakes;

/// <summary>One ReaderExchange call the fake coordinator served: when, what the reader sent, what it was handed.</summary>
public sealed record FakeExchange(DateTime At, IReadOnlyList<ReaderMessage> Received, IReadOnlyList<CoordinatorMessage> Sent);
