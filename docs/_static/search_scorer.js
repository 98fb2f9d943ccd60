// Ranking of the site's search (Sphinx's html_search_scorer): Sphinx's default weights,
// and one change. A section whose title contains the whole query, such as an FAQ
// question typed as a question, ranks above pages that merely contain the query's words
// (Sphinx scores a page by its best-matching single word, so without this every page
// with one of the words in a heading ties with the answer).
var Scorer = {
  score: (result) => {
    const [docname, title, anchor, descr, score, filename, kind] = result;
    return kind === "title" ? score + 10 : score;
  },
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: {0: 15, 1: 5, 2: -5},
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
