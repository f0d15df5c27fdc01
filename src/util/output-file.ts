// A file a command will write at the end of its work (`tokenizer train --out FILE`), checked before
// the work starts: not a folder, and its folder exists or can be created.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from './errors.js';
import { makeFolder } from './make-folder.js';

export function checkOutputFile(file: string, flag = '--out'): void {
  if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory())
    throw new UserError(`${flag} ${file} is a folder; name a file (e.g. ${path.join(file, 'tokenizer.json')})`);
  makeFolder(path.dirname(path.resolve(file)));
}
