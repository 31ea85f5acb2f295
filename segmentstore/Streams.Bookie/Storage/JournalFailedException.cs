namespace Streams.Bookie.Storage;

/// <summary>The journal's disk failed (a commit did not complete): nothing more can be made durable until restart.</summary>
internal sealed class JournalFailedException(string message, Exception? inner = null) : IOException(message, inner);
