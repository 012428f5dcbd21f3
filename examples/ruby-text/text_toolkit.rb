# frozen_string_literal: true

# The text toolkit worker: plain Ruby string handling, served to Python through the generated shim.
#   ruby -I BUILD_DIR -I adapters/ruby/lib text_toolkit.rb --servers 127.0.0.1:4730 --concurrency 4
require "text_bridge"

class TextToolkit < TextKit::V1::TextToolkit::Service
  SMALL_WORDS = %w[a an and as at but by for in nor of on or the to up via vs].freeze

  def slugify(request, _context)
    separator = request.separator.empty? ? "-" : request.separator
    slug = request.text.unicode_normalize(:nfkd)
                  .gsub(/\p{Mn}/, "")            # drop the accents the decomposition split off
                  .downcase
                  .gsub(/[^a-z0-9]+/, separator)
                  .delete_prefix(separator).delete_suffix(separator)
    TextKit::V1::SlugifyReply.new(slug: slug)
  end

  def titleize(request, _context)
    words = request.text.downcase.split(/(\s+)/)
    title = words.each_with_index.map do |word, i|
      small = SMALL_WORDS.include?(word) && i.positive? && i < words.size - 1
      small ? word : word.sub(/\A\p{Ll}/, &:upcase)
    end.join
    TextKit::V1::TitleizeReply.new(title: title)
  end

  def word_frequencies(request, context)
    counts = words(request.text).tally.sort_by { |word, count| [-count, word] }
    counts = counts.first(request.top) if request.top.positive?
    counts.each_with_index do |(word, count), i|
      context.progress(i + 1, counts.size)
      yield TextKit::V1::WordCount.new(word: word, count: count)
    end
  end

  def reading_time(request, context)
    raise Bridge::Error.new(:invalid_argument, "words_per_minute must be positive") if request.words_per_minute.negative?

    per_minute = request.words_per_minute.zero? ? 230 : request.words_per_minute
    count = words(request.text).size
    context.warning("empty text") if count.zero?
    minutes = count.to_f / per_minute
    TextKit::V1::ReadingTimeReply.new(words: count, minutes: minutes, human: "#{[minutes.ceil, 1].max} min read")
  end

  private

  def words(text) = text.downcase.scan(/[\p{L}\p{N}']+/)
end

TextKit::V1::TextToolkit.serve(TextToolkit.new, **Bridge::CommandLine.parse(ARGV))
